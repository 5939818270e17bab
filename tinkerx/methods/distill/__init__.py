"""``method=distill``: distillation from a teacher, on-policy or off-policy (``method.mode``).

Modules: ``method`` (the mode's method, options checked), ``on_policy``, ``off_policy``, ``teacher``
(the teacher component), ``advantages`` (per-token reverse KL), ``samples`` (the teacher's sample cache).
"""

from tinkerx.methods.distill.method import distill
from tinkerx.methods.distill.teacher import Teacher

__all__ = ["Teacher", "distill"]

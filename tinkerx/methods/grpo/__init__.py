"""``method=grpo``: GRPO and its paper variants on verifiable rewards.

Modules: ``method`` (the step loop), ``variants`` (a variant as a preset of switches), ``objective``
(trained samples to datums), ``dynamic_sampling`` (drawing until enough groups have signal).
"""

from tinkerx.methods.grpo.method import GRPO

__all__ = ["GRPO"]

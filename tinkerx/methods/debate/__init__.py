"""``method=debate``: two debaters argue opposing answers, a judge names a winner, the winners' turns are trained on.

Modules, in the order a step uses them: ``transcript`` (sides and the turn-by-turn loop), ``prompts``
(what debaters and the judge read), ``judge`` (a component on any model) and ``verdict`` (reading
its answer), ``training`` (winners' turns as weighted datums), ``metrics``, and ``method`` (the step loop).
"""

from tinkerx.methods.debate.judge import Judge
from tinkerx.methods.debate.method import Debate

__all__ = ["Debate", "Judge"]

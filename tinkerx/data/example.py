"""The one record type every data set yields."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """A question with its ground truth.

    ``answer`` is what a reward grades against (a number, a LaTeX expression, a choice letter).
    ``solution`` is a full worked response used as the SFT target when the data set has one.
    ``choices`` is set for multiple-choice data; ``answer`` is then the correct letter.
    """

    question: str
    answer: str
    id: str = ""
    solution: str | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)

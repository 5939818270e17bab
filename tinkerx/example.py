"""The one record type every data set yields, and rewards and evaluators read: below both (no imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Example:
    """A question with its ground truth.

    ``answer`` is what a reward grades against (a number, a LaTeX expression, a choice letter).
    ``solution`` is a full worked response used as the SFT target when the data set has one.
    ``choices`` is set for multiple-choice data; ``answer`` is then the correct letter.
    ``fields`` holds the source record's other values (``Body`` of an SVAMP record, ``level`` of a
    MATH one), so a prompt template can name them without code.
    """

    question: str
    answer: str
    id: str = ""
    solution: str | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)
    fields: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)


def record_fields(row: Mapping[str, Any]) -> dict[str, str]:
    """A source record's scalar values as text, for ``Example.fields``."""
    return {str(k): str(v) for k, v in row.items() if isinstance(v, (str, int, float, bool))}

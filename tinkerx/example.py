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


SCALARS = (str, int, float, bool)


class TagList(str):
    """A list-valued field (``topic_tags``) as text, ``"a, b"``, for prompts, with its ``items`` kept
    for results by tag (``evaluator.group_by``)."""

    items: tuple[str, ...]

    def __new__(cls, items: Any) -> "TagList":
        items = tuple(str(i) for i in items)
        text = super().__new__(cls, ", ".join(items))
        text.items = items
        return text

    def __getnewargs__(self) -> tuple[tuple[str, ...]]:  # copies and pickles rebuild it from its items
        return (self.items,)


def record_fields(row: Mapping[str, Any]) -> dict[str, str]:
    """A source record's scalar values as text, and its lists of scalars as ``TagList``s, for ``Example.fields``."""
    fields = {str(k): str(v) for k, v in row.items() if isinstance(v, SCALARS)}
    fields.update({str(k): TagList(v) for k, v in row.items() if isinstance(v, list) and all(isinstance(i, SCALARS) for i in v)})
    return fields

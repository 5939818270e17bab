"""Results by tag: an evaluation's accuracy per value of a record field (``evaluator.group_by``).

A tag is a field of the source record holding a string or number (MATH-500's ``subject`` and
``level``, MMLU-STEM's ``type``) or a list of them (``topic_tags``: the example counts under each).
Each evaluation record keeps its tags (``record["tags"]``), so ``summarize`` adds per-tag metrics,
``tag/FIELD=VALUE/accuracy`` and ``tag/FIELD=VALUE/n``, and a comparison pairs examples within a tag.
"""

from __future__ import annotations

from typing import Any, Sequence

from tinkerx.errors import ConfigError

PREFIX = "tag/"


def example_tags(example: Any, fields: Sequence[str]) -> dict[str, list[str]]:
    """The example's values of ``fields``: a list each (one value, or a list field's items; none if absent)."""
    tags = {}
    for name in fields:
        value = example.fields.get(name)
        tags[name] = [] if value is None else list(getattr(value, "items", (value,)))
    return tags


def check_group_by(fields: Sequence[str], examples: Sequence[Any], where: str) -> None:
    """ConfigError naming a ``group_by`` field no example of ``where`` has, and the fields they do have."""
    if not fields or not examples:
        return
    present = sorted({name for ex in examples for name in ex.fields})
    for name in fields:
        if name not in present:
            raise ConfigError(f"evaluator.group_by: {where} has no field {name!r}; its fields: {', '.join(present) or 'none'}")


def tag_metrics(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Accuracy and count per tag value, over the records that carry tags (failed requests excluded)."""
    groups: dict[str, list[bool]] = {}
    for record in records:
        if record.get("error"):
            continue
        for name, values in (record.get("tags") or {}).items():
            for value in values:
                groups.setdefault(f"{name}={value}", []).append(bool(record["correct"]))
    metrics: dict[str, float] = {}
    for key in sorted(groups, key=_natural):
        correct = groups[key]
        metrics[f"{PREFIX}{key}/accuracy"] = sum(correct) / len(correct)
        metrics[f"{PREFIX}{key}/n"] = float(len(correct))
    return metrics


def _natural(key: str) -> tuple:
    """``level=2`` before ``level=10``: numbers compared as numbers."""
    name, _, value = key.partition("=")
    try:
        return (name, 0, float(value), "")
    except ValueError:
        return (name, 1, 0.0, value)

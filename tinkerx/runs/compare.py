"""Two runs' ``metrics.jsonl`` compared line for line, timing aside: how ``tinkerx.reproduce`` and
an MCP session's replay tell whether they got the original's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinkerx.runs.recorder import TIME_PREFIX
from tinkerx.runs.usage import PREFIX as USAGE_PREFIX


def metric_rows(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if not k.startswith(TIME_PREFIX)} for row in rows]


def compare_metrics(original: Path, reproduced: Path) -> str | None:
    """None when the two metrics.jsonl files agree line for line (timing aside), else the first difference."""
    pairs = _paired_rows(original, reproduced)
    if isinstance(pairs, str):
        return pairs
    for i, (x, y) in enumerate(pairs, start=1):
        if x != y:
            key = next(k for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k))
            return f"line {i}: {key} was {x.get(key)!r}, now {y.get(key)!r}"
    return None


def float_agreement(original: Path, reproduced: Path) -> float | None:
    """The largest relative difference between the two runs' float metrics when everything else agrees
    (the same lines, keys, integer counts and strings), else None. Another CPU or torch build
    rounds float sums differently; a short run then agrees to about 1e-5, a long one drifts apart."""
    pairs = _paired_rows(original, reproduced)
    if isinstance(pairs, str):
        return None
    largest = 0.0
    for x, y in pairs:
        if set(x) != set(y):
            return None
        for key, value in x.items():
            other = y[key]
            if isinstance(value, float) or isinstance(other, float):
                if not isinstance(value, (int, float)) or not isinstance(other, (int, float)):
                    return None
                # Values near zero (a KL of 1e-8 that is rounding noise itself) compare by their absolute difference.
                largest = max(largest, abs(value - other) / max(abs(value), abs(other), 1e-4))
            elif value != other:
                return None
    return largest


def _paired_rows(original: Path, reproduced: Path) -> list[tuple[dict[str, Any], dict[str, Any]]] | str:
    """The two runs' metric lines side by side, timing aside, or why they cannot be (their line counts)."""
    a, b = metric_rows(original / "metrics.jsonl"), metric_rows(reproduced / "metrics.jsonl")
    if len(a) != len(b):
        return f"{len(a)} metric lines originally, {len(b)} now"
    # A run recorded before tokens were metered has no usage/ keys: what it lacks is not a difference.
    return [(_shared_usage(x, y), _shared_usage(y, x)) for x, y in zip(a, b)]


def _shared_usage(row: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``row`` without the usage/ keys ``other`` lacks."""
    return {k: v for k, v in row.items() if not k.startswith(USAGE_PREFIX) or k in other}

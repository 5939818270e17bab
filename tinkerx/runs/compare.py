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
    a, b = metric_rows(original / "metrics.jsonl"), metric_rows(reproduced / "metrics.jsonl")
    if len(a) != len(b):
        return f"{len(a)} metric lines originally, {len(b)} now"
    for i, (x, y) in enumerate(zip(a, b), start=1):
        # A run recorded before tokens were metered has no usage/ keys: what it lacks is not a difference.
        x, y = _shared_usage(x, y), _shared_usage(y, x)
        if x != y:
            key = next(k for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k))
            return f"line {i}: {key} was {x.get(key)!r}, now {y.get(key)!r}"
    return None


def _shared_usage(row: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``row`` without the usage/ keys ``other`` lacks."""
    return {k: v for k, v in row.items() if not k.startswith(USAGE_PREFIX) or k in other}

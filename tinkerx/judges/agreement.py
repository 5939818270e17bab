"""How far a judge can be trusted: its agreement with a rubric's labelled replies.

A labelled set is JSON lines, one reply each: ``prompt``, ``reply``, ``label`` (one of the
rubric's labels), optionally ``reference`` (the answer a tutoring reply must not reveal), ``id``
and ``why``. The shipped sets (``labelled/<rubric>.jsonl``) were written for this project, half
of each label, so always answering one label agrees 50% of the time.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from tinkerx.data.jsonl import jsonl_objects
from tinkerx.errors import DataError
from tinkerx.judges.judge import Case
from tinkerx.judges.rubric import Rubric

LABELLED_DIR = Path(__file__).resolve().parent / "labelled"


def labelled_path(rubric: str) -> Path:
    return LABELLED_DIR / f"{rubric}.jsonl"


def load_labelled(path: Path, rubric: Rubric) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"labelled set {path} does not exist; shipped: {', '.join(sorted(p.stem for p in LABELLED_DIR.glob('*.jsonl')))}")
    rows = []
    for n, row in jsonl_objects(path):  # a line that is not a JSON object: one line naming file and line
        if not isinstance(row.get("reply"), str) or row.get("label") not in rubric.labels:
            raise DataError(f"{path}:{n} needs 'reply' (text) and 'label' (one of {', '.join(rubric.labels)}), got keys {sorted(row)}")
        rows.append(row)
    if not rows:
        raise DataError(f"labelled set {path} is empty")
    return rows


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a rate (95% at z=1.96): sound at small n and at 0% or 100%."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def measure_agreement(judge: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The judge's labels against the gold ones: agreement with its 95% Wilson interval, how many
    replies it could not label, what it answered per gold label, and each row's judgment."""
    judgments = judge.judge([Case(str(r.get("prompt", "")), (r["reply"],), r.get("reference")) for r in rows])
    agree = [j.outcome == "judged" and j.label == r["label"] for r, j in zip(rows, judgments)]
    low, high = wilson_interval(sum(agree), len(rows))
    confusion = Counter(f"{r['label']}->{j.label if j.outcome == 'judged' else j.outcome}" for r, j in zip(rows, judgments))
    return {
        "rubric": judge.rubric.name,
        "judge": judge.identity,
        "n": len(rows),
        "agreement": sum(agree) / len(rows),
        "interval95": [low, high],
        "unparsed": sum(j.outcome == "unparsed" for j in judgments),
        "errors": sum(j.outcome == "error" for j in judgments),
        "answered": dict(sorted(confusion.items())),
        "rows": [{"id": r.get("id"), "gold": r["label"], **j.to_json()} for r, j in zip(rows, judgments)],
    }

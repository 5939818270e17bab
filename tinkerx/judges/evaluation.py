"""``evaluator.judges=[...]``: each evaluated reply judged by every rubric judge, the judgment kept on
the reply's record (``eval/<name>.jsonl``: ``judge/<rubric>``) and judged rates beside accuracy."""

from __future__ import annotations

from typing import Any, Sequence

from tinkerx.judges.judge import Case, Judgment


def _question(record: dict[str, Any]) -> str:
    if record.get("question") is not None:
        return str(record["question"])
    prompt = record.get("prompt")  # a conversation's messages (evaluation without a reward)
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return str(prompt or "")


def _reference(record: dict[str, Any]) -> str | None:
    value = record.get("answer", record.get("reference"))
    return None if value is None else str(value)


def judge_records(judges: Sequence[Any], records: list[dict[str, Any]]) -> None:
    """Judges every record whose request did not fail, keeping each judgment on its record (``judge/<rubric>``)."""
    judged = [r for r in records if not r.get("error")]
    for judge in judges:
        judgments: list[Judgment] = judge.judge([Case(_question(r), (str(r.get("completion", "")),), _reference(r)) for r in judged])
        for record, judgment in zip(judged, judgments):
            record[f"judge/{judge.name}"] = judgment.to_json()


def judged_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """``judge/<rubric>/...`` over the records that carry a judgment: ``rate`` (share of replies
    passing), ``score_mean``, and counts of ``unparsed`` and ``errors``."""
    metrics: dict[str, float] = {}
    names = sorted({k for r in records for k in r if k.startswith("judge/") and isinstance(r[k], dict)})
    for key in names:
        judgments = [r[key] for r in records if isinstance(r.get(key), dict)]
        n = max(1, len(judgments))
        metrics[f"{key}/rate"] = sum(bool(j.get("passed")) for j in judgments) / n
        metrics[f"{key}/score_mean"] = sum(float(j.get("score", 0.0)) for j in judgments) / n
        metrics[f"{key}/unparsed"] = float(sum(j.get("outcome") == "unparsed" for j in judgments))
        metrics[f"{key}/errors"] = float(sum(j.get("outcome") == "error" for j in judgments))
    return metrics

"""Grading a file of completions with the project's data sets and rewards, without a model.

Input: JSON lines, each with the completion (``completion``, or ``completions``: a list, one sample
each) and which problem it answers: ``task_id`` (the data set's own id: MBPP's 11, HumanEval's
"HumanEval/0"), ``id`` (tinkerx's example id, as in an evaluation's records: "mbpp-11"), or
``index`` (position in the graded split). Output, like an evaluation's: ``eval/<dataset>.jsonl``
(one record per completion), ``problems.jsonl`` (one per problem: samples, passes, pass@1) and
``results.json`` (metrics, pass@k included for code, and per-record correctness, so
``method=eval compare=`` can pair a model's run against it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinkerx.data.jsonl import jsonl_objects
from tinkerx.example import Example
from tinkerx.errors import DataError
from tinkerx.eval.compare import results_entry
from tinkerx.eval.evaluator import summarize
from tinkerx.eval.pass_at_k import per_problem
from tinkerx.rewards.gradable import can_grade
from tinkerx.rewards.guarded import GuardedReward

ID_FIELDS = ("task_id", "id", "index")


@dataclass
class Graded:
    records: list[dict[str, Any]]
    metrics: dict[str, float]
    out_dir: Path


def read_completions(path: str | Path) -> list[dict[str, Any]]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"completions file not found: {file}")
    rows = []
    for line_no, row in jsonl_objects(file):
        if not any(k in row for k in ID_FIELDS):
            raise DataError(f"{file}:{line_no}: needs one of {', '.join(ID_FIELDS)} to say which problem it answers")
        samples = row.get("completions", [row["completion"]] if "completion" in row else None)
        if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples):
            raise DataError(f"{file}:{line_no}: needs 'completion' (text) or 'completions' (a list of texts)")
        rows.append({**row, "_samples": samples, "_line": line_no})
    if not rows:
        raise DataError(f"{file}: no completions in it")
    return rows


def _lookup(dataset: Any, split: str) -> tuple[list[Example], dict[str, Example]]:
    ordered = dataset.split(split)
    by_key: dict[str, Example] = {}
    for examples in (getattr(dataset, "few_shot", []), dataset.train, dataset.validation, dataset.test):
        for ex in examples:
            by_key[ex.id] = ex
            if "task_id" in ex.fields:
                by_key.setdefault(str(ex.fields["task_id"]), ex)
    return ordered, by_key


def _example_for(row: dict[str, Any], ordered: list[Example], by_key: dict[str, Example], source: str, split: str) -> Example:
    for key in ("task_id", "id"):
        if key in row:
            found = by_key.get(str(row[key]))
            if found is None:
                sample = ", ".join(list(by_key)[:3])
                raise DataError(f"{source}:{row['_line']}: {key} {row[key]!r} is not in the data set (ids like {sample})")
            return found
    index = row["index"]
    if not isinstance(index, int) or not 0 <= index < len(ordered):
        raise DataError(f"{source}:{row['_line']}: index {index!r} is outside the {split} split's 0..{len(ordered) - 1}")
    return ordered[index]


def grade_file(path: str | Path, dataset: Any, reward: Any, out_dir: Path, split: str = "test", timeout_s: float = 120.0) -> Graded:
    rows = read_completions(path)
    ordered, by_key = _lookup(dataset, split)
    records: list[dict[str, Any]] = []
    for row in rows:
        ex = _example_for(row, ordered, by_key, str(path), split)
        for sample, completion in enumerate(row["_samples"]):
            records.append({"id": ex.id, "sample": sample, "question": ex.question, "answer": ex.answer, "completion": completion,
                            "ungradable": not can_grade(reward, ex.answer)})
    inner = getattr(reward, "reward", reward)
    details = getattr(inner, "details", None)
    gradable = [r for r in records if not r["ungradable"]]
    if callable(details):  # code: every execution in one parallel batch, with what happened to each
        for record, detail in zip(gradable, details([r["completion"] for r in gradable], [r["answer"] for r in gradable])):
            record.update(detail)
    else:
        guarded = reward if isinstance(reward, GuardedReward) else GuardedReward(reward, timeout_s=timeout_s)
        for record, score in zip(gradable, guarded.score_batch([r["completion"] for r in gradable], [r["answer"] for r in gradable])):
            record["reward"] = score
    for r in records:
        r.setdefault("reward", 0.0)
        r["correct"] = bool(r["passed"]) if "passed" in r else r["reward"] >= 0.5
        # The fields an evaluation's summary reads; no model, so no tokens and no truncation.
        r.update({"exact_match": False, "numeric_match": False, "num_tokens": 0, "truncated": False})
    metrics = summarize(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval").mkdir(exist_ok=True)
    _write_jsonl(out_dir / "eval" / f"{dataset.name}.jsonl", records)
    _write_jsonl(out_dir / "problems.jsonl", per_problem(records))
    results = {"model": None, "graded_file": str(Path(path).resolve()), "suite": "dataset", "run_dir": str(out_dir),
               "benchmarks": {dataset.name: {**results_entry(metrics, records), "evaluated": f"{len(records)} completions from {path}"}}}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return Graded(records, metrics, out_dir)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")

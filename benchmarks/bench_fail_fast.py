"""How soon each user mistake ends the CLI with its one-line error (the cases of bad_input_cases.py).

    flock /tmp/tinkerx-heavy.lock python benchmarks/bench_fail_fast.py [--repeats 3]

Each case runs in a fresh process from a temporary directory, one after another, each right after
the plain baseline ``python -m tinkerx --cfg job`` (compose and print the config, no work): the
ratio says how much more than composing the config a mistake costs. The goal that matters most is
absolute: an unreachable Tinker server must fail within 30 s (the SDK alone retries for minutes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import console, machine_line, median_ratio, table, timed, verdict
from bad_input_cases import cases as bad_input_cases

ROOT = Path(__file__).resolve().parent.parent
GOALS_S = {"unreachable tinker server": 30.0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_fail_fast_"))
    env = {**os.environ, "TINKER_API_KEY": "tml-bench", "TINKER_TELEMETRY": "0", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

    def run(cmd: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *cmd], cwd=tmp, env=env, capture_output=True, text=True)

    console.print(f"[bold]bench_fail_fast[/bold]  {machine_line(with_torch=False)}")
    cases = bad_input_cases(tmp)
    baseline = ["tinkerx", "--cfg", "job"]
    times: dict[str, list[float]] = {name: [] for name in cases}
    base_times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (cmd, _fragments) in cases.items():
            base_times[name].append(timed(lambda: run(baseline))[0])
            seconds, result = timed(lambda: run(cmd))
            if result.returncode == 0 or not result.stderr.strip().splitlines()[-1].startswith("tinkerx: error:"):
                raise SystemExit(f"{name}: did not fail with a one-line error: {result.stderr[-500:]}")
            times[name].append(seconds)
    t = table(f"Time to the one-line error (median of {args.repeats}; ratio vs --cfg job in the same repeat)",
              ["mistake", "median s", "--cfg job s", "ratio", "goal"], text_columns=1)
    for name in cases:
        median = statistics.median(times[name])
        goal = f"<= {GOALS_S[name]:g} s {verdict(median, GOALS_S[name], higher_is_better=False)}" if name in GOALS_S else ""
        t.add_row(name, f"{median:.2f}", f"{statistics.median(base_times[name]):.2f}",
                  f"{median_ratio(times[name], base_times[name]):.1f}x", goal)
    console.print(t)


if __name__ == "__main__":
    main()

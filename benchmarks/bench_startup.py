"""Start-up time of ``python -m tinkerx --cfg job`` (compose and print the config, no work).

    flock /tmp/tinkerx-heavy.lock python benchmarks/bench_startup.py [--repeats 9] [--importtime]

Each repeat starts fresh interpreters, alternating with the plain baseline ``python -c "import
hydra, omegaconf"`` (what any Hydra app pays) and ``python -c pass`` (the interpreter alone). The
goal is an absolute one: at most 1.5 s. ``--importtime`` also lists the slowest imports of one
start-up (``python -X importtime``), which is where to look when the goal is missed.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from _common import console, machine_line, median_ratio, table, timed, verdict

GOAL_S = 1.5
ROOT = Path(__file__).resolve().parent.parent

COMMANDS = {
    "python -m tinkerx --cfg job": [sys.executable, "-m", "tinkerx", "--cfg", "job"],
    'python -c "import hydra, omegaconf"': [sys.executable, "-c", "import hydra, omegaconf"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def run(argv: list[str]) -> None:
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def slowest_imports(limit: int) -> list[tuple[float, float, str]]:
    """(cumulative s, self s, module) of the slowest top-level imports of one start-up."""
    argv = [sys.executable, "-X", "importtime", "-m", "tinkerx", "--cfg", "job"]
    stderr = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True).stderr
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative) / 1e6, int(own) / 1e6, name.rstrip()))
    return sorted(rows, reverse=True)[:limit]


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--importtime", action="store_true", help="also list the slowest imports")
    args = parser.parse_args(argv)

    console.print(f"[bold]bench_startup[/bold]  {machine_line(with_torch=False)}")
    for argv_ in COMMANDS.values():  # warm the OS file cache and any .pyc writes
        run(argv_)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    names = list(COMMANDS)
    for i in range(args.repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order every repeat
            times[name].append(timed(lambda: run(COMMANDS[name]))[0])

    ours, hydra_only, bare = names
    t = table(
        f"Start-up (median of {args.repeats} fresh processes; ratio = median of per-repeat ratios)",
        ["command", "role", "median s", "min s", "ratio vs hydra import", f"goal <= {GOAL_S} s"],
    )
    for name, role in ((ours, "tinkerx"), (hydra_only, "baseline"), (bare, "interpreter only")):
        ratio = median_ratio(times[name], times[hydra_only])
        median = statistics.median(times[name])
        goal = verdict(median, GOAL_S, higher_is_better=False) if name == ours else ""
        t.add_row(name, role, f"{median:.3f}", f"{min(times[name]):.3f}", f"{ratio:.2f}x", goal)
    console.print(t)

    if args.importtime:
        imports = table("Slowest imports of one start-up (python -X importtime)", ["module", "cumulative s", "self s"], text_columns=1)
        for cumulative, own, name in slowest_imports(15):
            imports.add_row(name, f"{cumulative:.3f}", f"{own:.3f}")
        console.print(imports)


if __name__ == "__main__":
    sys.exit(main())

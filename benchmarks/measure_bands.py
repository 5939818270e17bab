"""Measure an experiment's reference band: run it over seeds x torch thread counts, then print each
run's figures and their min / max (the band to write under ``bands:`` in its YAML).

    python benchmarks/measure_bands.py sft_tiny_arithmetic_short --out outputs/bands
    python benchmarks/measure_bands.py grpo_tiny_arithmetic --out outputs/bands \\
        --init-from outputs/bands/sft_tiny_arithmetic_short/seed{seed}_threads{threads}
    python benchmarks/measure_bands.py sft_tiny_arithmetic_short --out outputs/bands --table-only

Each run is ``python -m tinkerx experiment=NAME seed=S`` with ``OMP_NUM_THREADS=T`` in
``OUT/NAME/seedS_threadsT``; a run already finished there is reused, so an interrupted measurement
picks up where it stopped. ``--init-from`` names the warm start of a chained experiment (GRPO, DPO,
distillation from the SFT warm start) per seed and thread count, so the chain is measured as a user
runs it; the overrides after the name are filled in the same way (the distillation teacher:
``'components.teacher.checkpoint=outputs/bands/sft_tiny_arithmetic/seed{seed}_threads{threads}'``).
The thread count matters: CPU float sums differ with it, so two machines agree line for
line only at the same count (``environment.json`` records ``torch_threads``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The held-out figures the table shows when a summary carries them (pref_accuracy: DPO; success_rate, turns_mean: an environment run;
# nll: conversations without a reward).
FIGURES = ("accuracy", "reward_mean", "pref_accuracy", "success_rate", "turns_mean", "nll")


def run_dir(out: Path, experiment: str, seed: int, threads: int) -> Path:
    return out / experiment / f"seed{seed}_threads{threads}"


def summary(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("status") == "finished" else None


def run_one(experiment: str, seed: int, threads: int, folder: Path, init_from: str | None, overrides: list[str]) -> float:
    """Runs one measurement (seconds of wall time); a finished run in ``folder`` is kept, not rerun."""
    if summary(folder) is not None:
        return 0.0
    args = [sys.executable, "-m", "tinkerx", f"experiment={experiment}", f"seed={seed}", f"hydra.run.dir={folder}"]
    if init_from:
        args.append(f"method.init_from={init_from.format(seed=seed, threads=threads)}")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    folder.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(folder.parent / f"{folder.name}.log", "w") as log:
        filled = [o.format(seed=seed, threads=threads) for o in overrides]
        result = subprocess.run([*args, *filled], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        print(f"{experiment} seed {seed}, {threads} thread(s): exit {result.returncode}, see {folder.parent / (folder.name + '.log')}", file=sys.stderr)
    return time.perf_counter() - start


def table(out: Path, experiment: str, seeds: list[int], threads: list[int]) -> list[str]:
    """One line per run (baseline -> final of each figure, wall time, band verdict), then min / max."""
    lines, finals = [f"{experiment}  (seed, torch threads: baseline -> final held-out figures)"], {}
    for seed in seeds:
        for count in threads:
            data = summary(run_dir(out, experiment, seed, count))
            if data is None:
                lines.append(f"  seed {seed}  threads {count}  not finished")
                continue
            cells = []
            for figure in FIGURES:
                before, after = (data.get("baseline") or {}).get(figure), (data.get("final") or {}).get(figure)
                if isinstance(after, (int, float)):
                    finals.setdefault(figure, []).append(after)
                    cells.append(f"{figure} {_num(before)} -> {_num(after)}")
            wall = data.get("wall_time_s")
            band = data.get("band", "no band")
            lines.append(f"  seed {seed}  threads {count}  {'  '.join(cells)}  wall {_num(wall, '.0f')} s  band: {band}")
    for figure, values in finals.items():
        lines.append(f"  final {figure}: min {min(values):.3f}  max {max(values):.3f}  spread {max(values) - min(values):.3f}  ({len(values)} runs)")
    return lines


def _num(value, form: str = ".3f") -> str:
    return format(value, form) if isinstance(value, (int, float)) else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bands")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--init-from", help="warm start per run; {seed} and {threads} are filled in")
    parser.add_argument("--table-only", action="store_true", help="print the table of the runs already in --out")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every run; {seed} and {threads} are filled in")
    args = parser.parse_intermixed_args(argv)  # overrides may follow the options
    if not args.table_only:
        for seed in args.seeds:
            for count in args.threads:
                seconds = run_one(args.experiment, seed, count, run_dir(args.out, args.experiment, seed, count), args.init_from, args.overrides)
                if seconds:
                    print(f"{args.experiment} seed {seed}, {count} thread(s): {seconds:.0f} s", flush=True)
    print("\n".join(table(args.out, args.experiment, args.seeds, args.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

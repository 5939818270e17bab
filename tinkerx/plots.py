"""Curves from runs' ``metrics.jsonl`` as a PNG: one panel per metric, one line per run.

    python -m tinkerx.plots RUN_DIR [RUN_DIR ...] --out docs/curve.png \
        [--keys eval/accuracy reward/mean] [--labels sft grpo] [--chain]
    python -m tinkerx.plots SWEEP_DIR --keys eval/accuracy --out sweep.png

A sweep folder (``-m``) stands for its trials, one line each, labelled by the overrides that
differ between them; failed trials have no metrics and are left out.

``--chain`` draws the runs one after another on the step axis (e.g. an SFT run, then the GRPO run
warm-started from it). Steps where a metric was not logged are skipped, so holdout metrics logged
every N steps plot as their own sparser line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

DEFAULT_KEYS = ("eval/accuracy", "reward/mean", "groups/all_0", "groups/all_1", "train/loss")


def read_metrics(run_dir: Path) -> list[dict]:
    """The run's rows, plus its baseline and final evaluations from ``summary.json`` where the rows
    lack them (SFT keeps those two only in the summary), at step 0 and at the last step."""
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary_file = Path(run_dir) / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    for name, step in (("baseline", 0), ("final", summary.get("steps"))):
        if isinstance(summary.get(name), dict) and step is not None:
            row = next((r for r in rows if r["step"] == step), None)
            if row is None:
                rows.append(row := {"step": step})
            for key, value in summary[name].items():
                row.setdefault(f"eval/{key}", value)
    return sorted(rows, key=lambda r: r["step"])


def series(rows: Sequence[dict], key: str, offset: int = 0) -> tuple[list[int], list[float]]:
    points = [(r["step"] + offset, r[key]) for r in rows if r.get(key) is not None]
    return [s for s, _ in points], [v for _, v in points]


def plot(run_dirs: Sequence[Path], out: Path, keys: Sequence[str] = DEFAULT_KEYS, labels: Sequence[str] | None = None,
         chain: bool = False, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    runs = [read_metrics(d) for d in run_dirs]
    labels = list(labels or [Path(d).name for d in run_dirs])
    keys = [k for k in keys if any(r.get(k) is not None for rows in runs for r in rows)]
    if not keys:
        raise SystemExit(f"none of the metrics were logged in {', '.join(map(str, run_dirs))}")
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False, layout="constrained")
    offsets = _offsets(runs) if chain else [0] * len(runs)
    for ax, key in zip(axes[0], keys):
        for i, (rows, label, offset) in enumerate(zip(runs, labels, offsets)):
            steps, values = series(rows, key, offset)
            if steps:  # a fixed colour per run, whichever panels it appears in
                ax.plot(steps, values, color=f"C{i}", marker="o" if len(steps) <= 30 else None, markersize=3, label=label)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if len(runs) > 1:
        handles = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels())}
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=len(handles))
    if title:
        fig.suptitle(title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _offsets(runs: Sequence[Sequence[dict]]) -> list[int]:
    offsets, total = [], 0
    for rows in runs:
        offsets.append(total)
        total += max((r["step"] for r in rows), default=0)
    return offsets


def expand_sweeps(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Run folders and their default labels, with each sweep folder replaced by its trials."""
    from tinkerx.runs.sweep_summary import sweep_rows, varying_overrides

    run_dirs: list[Path] = []
    labels: list[str] = []
    for path in map(Path, paths):
        if (path / "metrics.jsonl").is_file() or not path.is_dir():
            run_dirs.append(path)
            labels.append(path.name)
            continue
        rows = sweep_rows(path)
        for row, overrides in zip(rows, varying_overrides(rows)):
            if (Path(row["run_dir"]) / "metrics.jsonl").is_file():
                run_dirs.append(Path(row["run_dir"]))
                labels.append(overrides or f"trial {row['trial']}")
    if not run_dirs:
        raise SystemExit(f"no run folders with metrics.jsonl in {', '.join(map(str, paths))}")
    return run_dirs, labels


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tinkerx.plots", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding metrics.jsonl, or sweep folders")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--keys", nargs="+", default=list(DEFAULT_KEYS), help="metrics to plot, one panel each")
    parser.add_argument("--labels", nargs="+", help="one legend label per run (default: folder names)")
    parser.add_argument("--chain", action="store_true", help="draw the runs one after another on the step axis")
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    run_dirs, labels = expand_sweeps(args.runs)
    print(plot(run_dirs, args.out, args.keys, args.labels or labels, args.chain, args.title))


if __name__ == "__main__":
    main()

"""One metric of several runs against a cumulative cost, as a PNG: methods compared at equal budget.

    python -m tinkerx.plot_compare RUN_DIR [RUN_DIR ...] --out docs/compare.png \
        [--key eval/accuracy] [--cost sample/tokens] [--labels distill grpo] [--ceiling teacher/accuracy]

The x axis is the running sum of ``--cost`` (a per-step count logged by the run, e.g. the tokens it
sampled), so a method that samples more per step is not flattered by a step axis. ``--ceiling``
draws a horizontal line at a metric logged once (e.g. the teacher's accuracy).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from tinkerx.plots import read_metrics


def against_cost(rows: Sequence[dict], key: str, cost: str) -> tuple[list[float], list[float]]:
    """(cumulative cost, value) at every row that logged ``key``; the cost of a row counts towards it."""
    total, xs, ys = 0.0, [], []
    for row in rows:
        total += float(row.get(cost) or 0.0)
        if row.get(key) is not None:
            xs.append(total)
            ys.append(row[key])
    return xs, ys


def plot_compare(run_dirs: Sequence[Path], out: Path, key: str = "eval/accuracy", cost: str = "sample/tokens",
                 labels: Sequence[str] | None = None, ceiling: str | None = None, title: str | None = None) -> Path:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    labels = list(labels or [Path(d).name for d in run_dirs])
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    for i, (run_dir, label) in enumerate(zip(run_dirs, labels)):
        rows = read_metrics(Path(run_dir))
        xs, ys = against_cost(rows, key, cost)
        ax.plot(xs, ys, color=f"C{i}", marker="o", markersize=3, label=label)
        top = next((r[ceiling] for r in rows if ceiling and r.get(ceiling) is not None), None)
        if top is not None:
            ax.axhline(top, color=f"C{i}", linestyle=":", linewidth=1, label=f"{label}: {ceiling}")
    ax.set_xlabel(f"cumulative {cost}")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tinkerx.plot_compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--key", default="eval/accuracy")
    parser.add_argument("--cost", default="sample/tokens")
    parser.add_argument("--labels", nargs="*")
    parser.add_argument("--ceiling")
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    print(plot_compare(args.runs, args.out, args.key, args.cost, args.labels, args.ceiling, args.title))


if __name__ == "__main__":
    main()

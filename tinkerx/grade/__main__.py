"""``python -m tinkerx.grade FILE.jsonl dataset=NAME reward=NAME [KEY=VALUE ...] [--split test] [--out DIR]``

Grades a file of completions (from any model or tool) with the project's data sets and rewards and
writes an evaluation's files: ``eval/<dataset>.jsonl``, ``problems.jsonl``, ``results.json``.
Overrides are the run's own (``dataset.path=...``, ``reward.partial=true``). Each line of FILE:
``{"task_id": 11, "completion": "..."}`` (or ``id`` / ``index``; ``completions`` for several samples).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tinkerx.errors import UserError
from tinkerx.runs.compose import compose_config


def main(argv: list[str] | None = None) -> int:
    from tinkerx.cli_errors import report_user_error

    parser = argparse.ArgumentParser(prog="python -m tinkerx.grade", description=__doc__.split("\n\n")[1])
    parser.add_argument("file")
    parser.add_argument("overrides", nargs="*", help="config overrides: dataset=mbpp reward=code_tests dataset.path=...")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"), help="the split 'index' refers to")
    parser.add_argument("--out", default=None, help="output folder (default outputs/grade/<time>_<file name>)")
    args = parser.parse_args(argv)
    try:
        cfg = compose_config(args.overrides)
        from tinkerx.build import instantiate
        from tinkerx.grade import grade_file

        dataset = instantiate(cfg.dataset, "dataset")
        reward = instantiate(cfg.reward, "reward")
        out = Path(args.out) if args.out else Path("outputs/grade") / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{Path(args.file).stem}"
        graded = grade_file(args.file, dataset, reward, out, split=args.split, timeout_s=float(cfg.reward_timeout_s))
    except UserError as e:
        report_user_error(e)
    shown = {k: v for k, v in graded.metrics.items() if k.startswith(("accuracy", "reward_mean", "pass@", "code/", "num_"))}
    print(" ".join(f"{k}={v:g}" for k, v in shown.items()))
    print(f"graded {len(graded.records)} completions: {graded.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What resume costs: time to write a resume point, against the training steps between two of them.

A resume point is what ``training.save_every`` writes (``tinkerx.lifecycle.save_resume_point``):
the backend's checkpoint of weights and optimizer, the method state, RNG states and a manifest with
sha256 of every file. Timed on the real SFT method and driver code, interleaved with its own steps;
the share is ``checkpoint / (save_every x step + checkpoint)`` at the default cadence.

    python benchmarks/bench_checkpoint.py [--smollm2] [--steps 12]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import base_parser, console, machine_line, table  # noqa: E402

CASES = {
    "tiny": ["model=tiny", "dataset=arithmetic", "training.batch_size=64", "optim.lr=3e-3", "sampling.max_tokens=8"],
    "smollm2-135m": ["model=smollm2-135m", "dataset=arithmetic", "training.batch_size=8", "optim.lr=1e-4", "sampling.max_tokens=8"],
}


def measure(label: str, overrides: list[str], steps: int) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tinkerx.build import build
    from tinkerx.lifecycle import save_resume_point
    from tinkerx.paths import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["method=sft", "~evaluator", "method.validation_every=0", *overrides])
    run_dir = Path(tempfile.mkdtemp(prefix="tinkerx-bench-ckpt-"))
    method, pipeline, closers = build(cfg, run_dir)
    try:
        method.setup(pipeline)
        method.step()  # warm-up: first-step allocations
        step_s, ckpt_s = [], []
        for _ in range(steps):
            start = time.perf_counter()
            method.step()
            step_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            save_resume_point(method, pipeline)
            ckpt_s.append(time.perf_counter() - start)
        size = sum(p.stat().st_size for p in (run_dir / "checkpoints").rglob("*") if p.is_file()) / max(1, len(list((run_dir / "resume").iterdir())))
    finally:
        for closer in closers:
            closer.close()
    every = cfg.training.save_every
    step, ckpt = statistics.median(step_s), statistics.median(ckpt_s)
    return {"label": label, "every": every, "step": step, "ckpt": ckpt, "share": ckpt / (every * step + ckpt), "mb": size / 2**20}


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.strip().splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed step + checkpoint pairs per model")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    labels = ["tiny"] + (["smollm2-135m"] if args.smollm2 else [])
    rows = [measure(label, CASES[label], args.steps) for label in labels]
    console.print("bench_checkpoint  " + machine_line())
    t = table(
        "Resume point cost vs training steps (medians; share of run time at the default save_every)",
        ["model", "training", "step s", "resume point s", "MB per point", "save_every", "share of run time", "goal < 5%"],
    )
    for r in rows:
        training = "full" if r["label"] == "tiny" else "LoRA 16"
        t.add_row(r["label"], training, f"{r['step']:.3f}", f"{r['ckpt']:.3f}", f"{r['mb']:.1f}", str(r["every"]), f"{100 * r['share']:.2f}%", "met" if r["share"] < 0.05 else "missed")
    console.print(t)


if __name__ == "__main__":
    main()

"""GRPO step time with overlapped rollouts against the same run without, through the real CLI.

    flock /tmp/tinkerx-heavy.lock python benchmarks/bench_overlap.py [--smollm2] [--steps 6] [--repeats 2]

Each run is ``python -m tinkerx`` in its own process on ``backend=local``: with ``--smollm2``,
SmolLM2-135M with LoRA 16 on 2-digit addition prompts (``experiment=grpo_smollm2_arithmetic``'s
batch, group, lengths and rank); without, the tiny model (full fine-tuning). The reward is a coin
(an even number of characters), which any model earns about half the time: every group has signal,
so every step trains -- what is timed is the step, not learning (the untrained SmolLM2 scores 0 on
most arithmetic groups, and a step without signal trains nothing). Settings compared, interleaved
``--repeats`` times (the order rotating):

* ``sync``: sample, then train, on the one model (the default), torch at ``--threads`` threads;
* ``sync, all cores``: the same with torch at every core's thread (the plain way to use the cores);
* ``overlap``: ``method.overlap_rollouts=true backend.rollout_device=cpu`` -- a model copy samples
  the next step on its own thread while the trained model trains, each at ``--threads`` threads.

Reported: the median step time after the first step (the first batch is sampled on the spot in
every setting), the speed-up of ``overlap`` over the faster ``sync`` setting, peak RSS (the copy
shares the frozen base weights), and mean reward over the steps (the coin's: about 0.5 whatever is
trained; overlap trains on samples one update old, and the importance ratio corrects for it).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import base_parser, console, machine_line, table, verdict

GOAL = 1.2  # overlap step time / the faster sync setting's: more than noise
ROOT = Path(__file__).resolve().parents[1]

COIN = "def compute_reward(completion, ground_truth):\n    return float(len(completion) % 2 == 0)\n"
TINY = ["method=grpo", "model=tiny", "dataset=arithmetic", "optim.lr=1e-3", "training.batch_size=32", "method.group_size=8", "sampling.max_tokens=8"]
SMOLLM2 = ["experiment=grpo_smollm2_arithmetic"]
SETTINGS = {
    "sync": [],
    "sync, all cores": None,  # torch's own thread count
    "overlap": ["method.overlap_rollouts=true", "backend.rollout_device=cpu"],
}


def run_once(model_args: list[str], setting: str, steps: int, threads: int) -> dict:
    extra = SETTINGS[setting]
    thread_args = [f"backend.num_threads={os.cpu_count() or 1}"] if extra is None else [f"backend.num_threads={threads}"]
    run_dir = Path(tempfile.mkdtemp(prefix="tinkerx-bench-overlap-"))
    args = [*model_args, f"training.max_steps={steps}", "training.eval_every=0", "method.evaluate_baseline=false", "method.save_final=false",
            "logger=none", *thread_args, *(extra or []),
            f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads if extra is not None else os.cpu_count() or 1), "WANDB_MODE": "disabled"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run([sys.executable, "-m", "tinkerx", *args], cwd=ROOT, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{setting} run failed:\n{result.stderr[-3000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    stepped = [r for r in rows if "time/step_s" in r]
    return {
        "step_s": [r["time/step_s"] for r in stepped[1:]],
        "sample_wait_s": [r["time/sample_s"] for r in stepped[1:]],
        "reward": statistics.mean(r["reward/mean"] for r in stepped),
        # ru_maxrss of children is the largest child so far: only a new maximum is this run's own.
        "peak_rss_gib": rss / 1024**2 if rss > before else None,
        "staleness": [r.get("sample/staleness") for r in stepped],
    }


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="GRPO steps per run (the first is not timed)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting, interleaved")
    args = parser.parse_args(argv)
    threads = args.threads or 1
    coin = Path(tempfile.mkdtemp(prefix="tinkerx-bench-overlap-")) / "even_length.py"
    coin.write_text(COIN)
    model_args = [*(SMOLLM2 if args.smollm2 else TINY), "reward=python", f"reward.path={coin}"]
    console.print(f"[bold]bench_overlap[/bold]  {machine_line(with_torch=False)}; {'smollm2' if args.smollm2 else 'tiny'}, "
                  f"{args.steps} steps, {threads} torch thread(s) per worker")
    results: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    names = list(SETTINGS)
    for i in range(args.repeats):
        for name in names[i % len(names):] + names[: i % len(names)]:
            results[name].append(run_once(model_args, name, args.steps, threads))
            r = results[name][-1]
            console.print(f"  {name}: steps {[round(s, 2) for s in r['step_s']]} s, waiting for samples {[round(s, 2) for s in r['sample_wait_s']]} s, "
                          f"mean reward {r['reward']:.3f}, staleness {r['staleness']}")
    median = {name: statistics.median(s for r in runs for s in r["step_s"]) for name, runs in results.items()}
    fastest_sync = min(("sync", "sync, all cores"), key=median.get)
    t = table("GRPO step with and without overlapped rollouts (median step time after the first)",
              ["setting", "median step s", "peak RSS GiB (first run)", "mean reward", "overlap speed-up", f"goal >= {GOAL}x"], text_columns=1)
    for name, runs in results.items():
        ratio = median[fastest_sync] / median[name]
        rss = next((r["peak_rss_gib"] for r in runs if r["peak_rss_gib"]), None)
        t.add_row(name, f"{median[name]:.2f}", f"{rss:.2f}" if rss else "-", f"{statistics.mean(r['reward'] for r in runs):.3f}",
                  f"{ratio:.2f}x" if name == "overlap" else "", verdict(ratio, GOAL, True) + f" (vs {fastest_sync})" if name == "overlap" else "")
    console.print(t)


if __name__ == "__main__":
    sys.exit(main())

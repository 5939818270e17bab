"""Measure the README's agent-driven demo (an MCP session: SFT, then GRPO from it) over seeds and torch
thread counts, the way ``benchmarks/measure_bands.py`` measures an experiment.

    python benchmarks/measure_mcp_demo.py --seeds 0 1 2 --threads 1 2

Each session is ``python -m tinkerx.mcp`` over stdio, driven by the MCP SDK's own client with the
calls of ``tests/test_mcp.py``'s session (``--sft-steps`` and ``--grpo-iterations`` change its
lengths): ``init_sft`` on 500 one-digit sums (held out: 50 others), ``train_sft_step``, ``evaluate``,
``save``, ``init_grpo`` from that checkpoint with the numeric reward, ``train_grpo_step``,
``evaluate``. The session's seed is passed to both ``init_`` calls; ``OMP_NUM_THREADS`` is the
server's. Prints each session's held-out accuracy after SFT and after GRPO, and their min / max.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.mcp import call, write_addition  # noqa: E402  (the test session's client call and its sums)


async def session(folder: Path, seed: int, threads: int, sft_steps: int, grpo_iterations: int, slips: float, schedule: str) -> dict[str, float]:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    holdout = write_addition(folder / "holdout.jsonl", 50, 1)
    demos, prompts = write_addition(folder / "demos.jsonl", 500, 0, slips=slips), write_addition(folder / "train.jsonl", 500, 0)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TINKER_TELEMETRY": "0", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "tinkerx.mcp", "--session-dir", str(folder / "session")], cwd=str(ROOT), env=env)
    figures: dict[str, float] = {}
    with (folder / "server.stderr.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            sft = await call(client, "init_sft", examples_path=str(demos), holdout_path=str(holdout), lr=3e-3, batch_size=32,
                             max_steps=sft_steps, lr_schedule=schedule, warmup_steps=5, validation_every=20, max_tokens=4, seed=seed)  # fmt: skip
            figures["sft_baseline"] = sft["baseline"]["accuracy"]
            await call(client, "train_sft_step", steps=sft_steps)
            figures["sft_final"] = (await call(client, "evaluate"))["metrics"]["accuracy"]
            await call(client, "save", name="sft")
            await call(client, "init_grpo", prompts_path=str(prompts), holdout_path=str(holdout), reward="numeric", init_from="sft",
                       group_size=8, groups_per_batch=16, lr=1e-4, max_tokens=4, max_steps=grpo_iterations, eval_every=0, seed=seed)  # fmt: skip
            await call(client, "train_grpo_step", iterations=grpo_iterations)
            figures["grpo_final"] = (await call(client, "evaluate"))["metrics"]["reward_mean"]
            await call(client, "finish")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sft-steps", type=int, default=100)
    parser.add_argument("--grpo-iterations", type=int, default=20)
    parser.add_argument("--sft-schedule", default="constant", choices=["constant", "linear", "cosine"])
    parser.add_argument("--slips", type=float, default=0.0, help="share of the SFT sums past 9 answered without the tens")
    parser.add_argument("--out", type=Path, default=None, help="keep the session folders here (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="mcp_demo_"))
    rows = []
    for threads in args.threads:
        for seed in args.seeds:
            folder = out / f"seed{seed}_threads{threads}"
            folder.mkdir(parents=True, exist_ok=True)
            began = time.perf_counter()
            figures = asyncio.run(session(folder, seed, threads, args.sft_steps, args.grpo_iterations, args.slips, args.sft_schedule))
            wall = time.perf_counter() - began
            rows.append(figures)
            print(f"seed {seed}  threads {threads}  SFT {figures['sft_baseline']:.2f} -> {figures['sft_final']:.2f}  "
                  f"GRPO -> {figures['grpo_final']:.2f}  wall {wall:.0f} s", flush=True)  # fmt: skip
    for key in ("sft_final", "grpo_final"):
        values = [r[key] for r in rows]
        print(f"{key}: min {min(values):.2f}  max {max(values):.2f}  spread {max(values) - min(values):.2f}  ({len(values)} sessions)")
    print(f"session folders: {out}")


if __name__ == "__main__":
    main()

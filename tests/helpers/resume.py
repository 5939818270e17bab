"""Runs of the real CLI in a subprocess, killed at a chosen point and resumed (``tinkerx.resume``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import ROOT

TINY = ["model=tiny", "dataset=arithmetic", "backend=local", "optim.lr=3e-3", "sampling.max_tokens=8", "seed=3"]
DATA = ["dataset.train_size=400", "dataset.validation_size=20", "dataset.test_size=20"]
SFT = [*TINY, *DATA, "method=sft", "training.max_steps=24", "training.batch_size=16", "training.save_every=6", "method.validation_every=5", "training.eval_every=10", "training.keep_checkpoints=null"]
GRPO = [*TINY, *DATA, "method=grpo", "training.max_steps=8", "training.batch_size=4", "method.group_size=4", "training.save_every=3", "training.eval_every=4", "sampling.temperature=1.0"]
# A debate's own words take at least 420 of the tiny byte tokenizer's tokens before any argument: debates
# of more than one short round need more than its 512 positions (rotary: the weights are the same).
DEBATE_CONTEXT = "model.loader.max_position_embeddings=2048"
DEBATE = [*TINY, "method=debate", "dataset=mmlu_stem", "method.num_debates=2", "method.rounds=1", "training.max_steps=4", "training.save_every=2", "components.judge.max_tokens=4"]

VOLATILE = ("run_dir", "wall_time_s", "checkpoint", "checkpoints", "path")


def run_until_killed(args: list[str], run_dir: Path, kill_at: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {"TINKERX_KILL_AT": kill_at} if kill_at else {}
    return run_module([*args, f"hydra.run.dir={run_dir}"], env=env, timeout=timeout)


def run_module(args: list[str], module: str = "tinkerx", env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` from the checkout, one torch thread, extra environment ``env``."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=full_env)


def _scrub(value):
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def summary_without_paths(run_dir: Path) -> dict:
    return _scrub(json.loads((run_dir / "summary.json").read_text()))


def resume(run_dir: Path, *overrides: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_module([str(run_dir), *overrides], module="tinkerx.resume", timeout=timeout)

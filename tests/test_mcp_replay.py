"""An agent's session replayed without the agent (``python -m tinkerx.reproduce SESSION_DIR``)
reproduces every run's metrics line for line on the local CPU backend, including a training call
the agent cancelled part-way and a checkpoint it went back to."""

from __future__ import annotations

import os

import asyncio
import json
from typing import Any

import anyio
import pytest

from tests.conftest import run_cli
from tests.helpers.mcp import call, run_session, write_addition

pytestmark = pytest.mark.slow


def _metrics(path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def test_replayed_session_reproduces_metrics_line_for_line(tmp_path):
    train = write_addition(tmp_path / "train.jsonl", 200, seed=0)
    holdout = write_addition(tmp_path / "holdout.jsonl", 20, seed=1)
    session_dir = tmp_path / "session"
    cancelled: dict[str, Any] = {}

    async def agent(client: Any) -> None:
        await call(client, "init_sft", examples_path=str(train), holdout_path=str(holdout), batch_size=16, max_steps=400, lr_schedule="constant", validation_every=5, max_tokens=4)
        await call(client, "train_sft_step", steps=5)
        job = await call(client, "train_sft_step", wait=False, steps=300)
        await asyncio.sleep(2.0)
        cancelled.update(await call(client, "cancel", job_id=job["job_id"]))
        with anyio.move_on_after(2.0):  # the client cancels the request itself: the job stops after its step
            await call(client, "train_sft_step", steps=300)
        await call(client, "save", name="a")
        await call(client, "train_sft_step", steps=2)
        await call(client, "load", name_or_path="a")
        await call(client, "sample", prompts=["2+2="], n=3, temperature=1.0)
        await call(client, "evaluate")
        await call(client, "init_grpo", prompts_path=str(train), holdout_path=str(holdout), init_from="a", group_size=4, groups_per_batch=4, max_tokens=4, eval_every=2,
                   checkpoint_threshold=0.0, checkpoint_min_steps=2)  # fmt: skip
        await call(client, "train_grpo_step", iterations=3)
        cancelled["checkpoints"] = (await call(client, "list_checkpoints"))["checkpoints"]
        await call(client, "finish")

    run_session(session_dir, agent)
    steps_taken = cancelled["result"]["steps_run"]
    assert cancelled["state"] == "finished" and 0 < steps_taken < 300 and cancelled["result"]["stopped_early"], cancelled

    # GRPO's own threshold checkpoint (holdout reward >= 0.0 at step 2, after checkpoint_min_steps).
    assert [c["name"] for c in cancelled["checkpoints"]] == ["a", "auto_step_000002"], cancelled["checkpoints"]

    replayed = tmp_path / "replayed"
    # The same CPU thread count as the session's server (SERVER_ENV): float sums are split by thread,
    # so line-for-line equality holds for the same count, as for any CPU run.
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        result = run_cli([str(session_dir), f"hydra.run.dir={replayed}"], module="tinkerx.reproduce")
    finally:
        os.environ.pop("OMP_NUM_THREADS") if saved is None else os.environ.__setitem__("OMP_NUM_THREADS", saved)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("matches the original line for line") == 2, result.stderr[-3000:]
    for run in ("run01_sft", "run02_grpo"):
        original = _metrics(session_dir / run / "metrics.jsonl")
        assert original and _metrics(replayed / run / "metrics.jsonl") == original
    calls = [json.loads(line) for line in (session_dir / "tool_calls.jsonl").read_text().splitlines()]
    sft_calls = [c["result"] for c in calls if c["tool"] == "train_sft_step"]
    assert [c["stopped_early"] for c in sft_calls] == [False, True, True, False], sft_calls
    sft_rows = _metrics(session_dir / "run01_sft" / "metrics.jsonl")
    # Both cancelled calls' steps, replayed as taken.
    assert max(r["step"] for r in sft_rows) == sum(c["steps_run"] for c in sft_calls) == 5 + steps_taken + sft_calls[2]["steps_run"] + 2

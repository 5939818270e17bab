"""The agent's flow on ``backend=tinker``: the MCP server drives the real tinker SDK against the
local Tinker-compatible server (``python -m tinkerx.serve``), checkpoints as tinker:// paths."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.mcp import call, run_session, write_addition
from tests.helpers.tinker_server import KEY, start_server

pytestmark = pytest.mark.slow


def test_agent_session_on_the_tinker_backend(tmp_path):
    train = write_addition(tmp_path / "train.jsonl", 120, seed=0)
    holdout = write_addition(tmp_path / "holdout.jsonl", 8, seed=1)
    process, url = start_server(tmp_path)
    seen: dict[str, Any] = {}

    async def agent(client: Any) -> None:
        await call(client, "init_sft", examples_path=str(train), holdout_path=str(holdout), batch_size=8, max_steps=10, max_tokens=4)
        seen["sft"] = await call(client, "train_sft_step", steps=3)
        seen["samples"] = await call(client, "sample", prompts=["2+3="], n=2)
        seen["saved"] = await call(client, "save", name="sft")
        await call(client, "init_grpo", prompts_path=str(train), holdout_path=str(holdout), init_from="sft", group_size=4, groups_per_batch=4, max_tokens=4, eval_every=0)
        seen["grpo"] = await call(client, "train_grpo_step", iterations=2)
        seen["eval"] = await call(client, "evaluate")
        seen["summary"] = await call(client, "finish")

    session_dir = tmp_path / "session"
    try:
        run_session(session_dir, agent, "backend=tinker", f"backend.base_url={url}", env={"TINKER_API_KEY": KEY})
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert seen["sft"]["steps_run"] == 3 and seen["sft"]["train_loss_last"] > 0
    assert len(seen["samples"]["samples"][0]["completions"]) == 2
    assert seen["saved"]["path"].startswith("tinker://")
    assert [it["step"] for it in seen["grpo"]["iterations"]] == [1, 2]
    assert seen["summary"]["checkpoint"].startswith("tinker://") and seen["summary"]["init_from"] == seen["saved"]["path"]
    assert 0.0 <= seen["eval"]["metrics"]["accuracy"] <= 1.0
    for run in ("run01_sft", "run02_grpo"):
        assert (session_dir / run / "http_traffic.yaml").stat().st_size > 0
        assert KEY not in (session_dir / run / "config.yaml").read_text()
    assert json.loads((session_dir / "session.json").read_text())["overrides"][0] == "backend=tinker"

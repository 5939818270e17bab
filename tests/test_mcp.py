"""The MCP server end to end: started over stdio by the MCP SDK's own client, as an agent would.

One session on the tiny model: SFT on one-digit addition until held-out accuracy rises, then GRPO
from that checkpoint until the held-out reward rises; along the way progress notifications, a "busy"
answer to a concurrent call, and a broken reward refused while the server keeps serving.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.mcp import call, call_error, run_session, write_addition

pytestmark = pytest.mark.slow

# GRPO raises the held-out reward reliably from a 100-step SFT start (held-out accuracy 0.36) at
# the tiny model's RL learning rate, 1e-4: +0.32..+0.38 over GRPO seeds 0-3. From 60 SFT steps
# (0.20) the same 20 iterations moved it -0.02..+0.12 (lr 1e-4..1e-3); from 100 steps, lr 3e-4 and
# 1e-3 gained only +0.20 and +0.06. Figures and commands: docs/mcp.md.
GRPO_ITERATIONS = 20
# With the current sampler and engine the SFT start is 0.56 and 20 iterations reach 0.66 (+0.10;
# 40 iterations at lr 2e-4: 0.68). Greedy evaluation of a fixed holdout is deterministic (lr 1e-12
# leaves it unchanged), so 3 more of 50 sums right is a rise the training made, not noise.
GRPO_MIN_GAIN = 0.06  # held-out reward_mean, absolute

def test_agent_session_sft_then_grpo_over_stdio(tmp_path):
    train = write_addition(tmp_path / "train.jsonl", 500, seed=0)
    holdout = write_addition(tmp_path / "holdout.jsonl", 50, seed=1)
    bad_reward = tmp_path / "bad_reward.py"
    bad_reward.write_text("def compute_reward(completion, ground_truth):\n    return 'yes'\n")
    session_dir = tmp_path / "session"
    seen: dict[str, Any] = {}

    async def agent(client: Any) -> None:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"start_run", "train_step", "init_sft", "init_grpo", "train_sft_step", "train_grpo_step", "sample", "evaluate", "save", "load",
                "list_checkpoints", "status", "finish", "wait", "cancel"} <= tools  # fmt: skip
        assert "playbook" in {p.name for p in (await client.list_prompts()).prompts}

        sft = await call(client, "init_sft", examples_path=str(train), holdout_path=str(holdout), lr=3e-3, batch_size=32,
                         max_steps=100, warmup_steps=5, validation_every=20, max_tokens=4)  # fmt: skip
        seen["sft_baseline"] = sft["baseline"]["accuracy"]
        progress: list = []
        trained = await call(client, "train_sft_step", progress, steps=90)
        assert trained["steps_run"] == 90 and trained["val_loss"] is not None
        assert trained["train_loss_last"] < trained["train_loss_first"]
        seen["progress"] = progress

        # A long call started without waiting; a concurrent call meets "busy" and the job finishes.
        job = await call(client, "train_sft_step", wait=False, steps=10)
        seen["busy"] = await call_error(client, "sample", prompts=["3+4="])
        waited = await call(client, "wait", job_id=job["job_id"], timeout_s=120)
        assert waited["state"] == "finished" and waited["result"]["step"] == 100

        samples = await call(client, "sample", prompts=["3+4=", "8+1="], n=2)
        assert len(samples["samples"]) == 2 and len(samples["samples"][0]["completions"]) == 2
        seen["sft_after"] = (await call(client, "evaluate"))["metrics"]["accuracy"]
        await call(client, "save", name="sft")

        # A broken reward is refused before anything is replaced; the server keeps serving.
        seen["bad_reward"] = await call_error(client, "init_grpo", prompts_path=str(train), reward=str(bad_reward))
        assert (await call(client, "status"))["method"] == "sft"

        grpo = await call(client, "init_grpo", prompts_path=str(train), holdout_path=str(holdout), reward="numeric", init_from="sft",
                          group_size=8, groups_per_batch=16, lr=1e-4, max_tokens=4, max_steps=100, eval_every=0)  # fmt: skip
        assert grpo["reward_check"]["scores"] == [1.0] * 4
        seen["grpo_baseline"] = grpo["baseline"]["reward_mean"]
        grpo_trained = await call(client, "train_grpo_step", iterations=GRPO_ITERATIONS)
        iterations = grpo_trained["iterations"]
        seen["rewards"] = [it["reward_mean"] for it in iterations]
        seen["grpo_updates"] = grpo_trained["updates_total"]
        seen["grpo_signal_iterations"] = sum(1 for it in iterations if it["all_0"] + it["all_1"] < 16)
        assert all({"reward_std", "accuracy", "all_0", "all_1", "truncation_rate"} <= set(it) for it in iterations)
        seen["grpo_after"] = (await call(client, "evaluate"))["metrics"]["reward_mean"]
        seen["summary"] = await call(client, "finish")

    run_session(session_dir, agent, "--busy-timeout", "0.5")

    assert seen["sft_after"] > seen["sft_baseline"] + 0.1, seen
    # GRPO started from the SFT weights (same holdout score), updated them on every iteration with
    # signal, and raised the reward on the same fixed holdout (greedy, 50 sums: a step is 0.02).
    # Measured 0.56 -> 0.66 with the merged code (0.36 -> 0.74 on an earlier sampler; docs/mcp.md).
    assert seen["grpo_baseline"] == pytest.approx(seen["sft_after"]), seen
    assert seen["grpo_updates"] == seen["grpo_signal_iterations"] > 0, seen
    assert seen["grpo_after"] >= seen["grpo_baseline"] + GRPO_MIN_GAIN, seen
    assert all(0.0 <= r <= 1.0 for r in seen["rewards"]) and 0.0 <= seen["grpo_after"] <= 1.0, seen
    done = [p[0] for p in seen["progress"]]
    assert done == sorted(done) and done[-1] == 90 and len(done) >= 10, seen["progress"]
    assert "busy: train_sft_step (job" in seen["busy"], seen["busy"]
    assert "broken" in seen["bad_reward"] and "\n" not in seen["bad_reward"], seen["bad_reward"]

    # The session folder: runs in the CLI's format, every call recorded, heartbeat and debug logs.
    runs = sorted(p.name for p in session_dir.iterdir() if p.is_dir() and p.name.startswith("run"))
    assert runs == ["run01_sft", "run02_grpo"]
    for run in runs:
        for name in ("config.yaml", "metrics.jsonl", "summary.json", "environment.json"):
            assert (session_dir / run / name).is_file(), (run, name)
    assert (session_dir / "run02_grpo" / "samples.jsonl").is_file()
    calls = [json.loads(line) for line in (session_dir / "tool_calls.jsonl").read_text().splitlines()]
    tools = [c["tool"] for c in calls]
    assert tools.count("train_sft_step") == 2 and tools[-1] == "finish"
    assert any(c["tool"] == "sample" and not c["ok"] and c["error"].startswith("busy") for c in calls)
    assert json.loads((session_dir / "heartbeat.json").read_text())["tool"] == "train_grpo_step"
    assert (session_dir / "debug" / "training.log").stat().st_size > 0
    # The transcript the README quotes is this test's own: keep it beside the session for a look.
    (session_dir.parent / "observed.json").write_text(json.dumps({k: v for k, v in seen.items() if k != "summary"}, indent=2, default=str))

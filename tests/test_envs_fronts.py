"""An environment run through every front door: the CLI writes its episodes, a run killed and
resumed equals the uninterrupted one, and MCP's ``start_run`` starts one with an env override."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from tests.helpers.resume import TINY, resume, run_until_killed, summary_without_paths
from tests.helpers.runs import metrics_rows, metrics_without_time, run_in_process

# The tiny model guessing 1..9, two guesses, two tokens a reply: small enough for seconds a step.
GUESS = ["method=grpo", "env=guess_number", "env.high=9", "env.max_turns=2", "env.test_size=4", "env.train_size=20",
         "env.format_bonus=0.2", "training.batch_size=3", "method.group_size=3", "sampling.max_tokens=2", "optim.lr=1e-3",
         "method.samples_per_step=1", "training.eval_every=2"]  # fmt: skip


def test_an_env_run_records_episodes_turn_by_turn_and_env_metrics(tmp_path):
    # ~reward: an environment scores its own episodes, so a run needs no reward= at all.
    summary = run_in_process([*GUESS, "~reward", "training.max_steps=2", "backend.num_threads=1"], tmp_path / "run")
    rows = metrics_rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert "eval/success_rate" in rows[0] and "eval/turns_mean" in rows[0] and rows[0]["eval/num_episodes"] == 4
    # The environment's own metrics, averaged over the held-out episodes, as over a step's (env/...).
    held_out = [json.loads(line) for line in (tmp_path / "run" / "eval" / "baseline.jsonl").read_text().splitlines()]
    invalid = sum(e["metrics"].get("invalid", 0.0) for e in held_out) / len(held_out)
    assert rows[0]["eval/env_invalid"] == pytest.approx(invalid)
    for key in ("episodes/turns", "episodes/count", "episodes/max_turns", "episodes/env_error", "reward/mean", "train/datums"):
        assert key in rows[1], key
    assert rows[1]["episodes/count"] == 9 and 1 <= rows[1]["episodes/turns"] <= 2
    episodes = [json.loads(line) for line in (tmp_path / "run" / "episodes" / "step_000001.jsonl").read_text().splitlines()]
    assert len(episodes) == 3  # samples_per_step=1 group of group_size 3
    for e in episodes:
        assert e["task"]["secret"] in range(1, 10) and e["outcome"] in ("done", "max_turns")
        assert 1 <= len(e["turns"]) <= 2 and all(t["role"] == "policy" and t["tokens"] >= 1 for t in e["turns"])
        if len(e["turns"]) == 2:  # the second prompt holds the first's, the reply and the feedback
            assert e["turns"][1]["prompt_tokens"] > e["turns"][0]["prompt_tokens"] + e["turns"][0]["tokens"]
    baseline = [json.loads(line) for line in (tmp_path / "run" / "eval" / "baseline.jsonl").read_text().splitlines()]
    assert len(baseline) == 4 and summary["steps"] == 2


@pytest.mark.slow
def test_an_env_run_killed_and_resumed_equals_the_uninterrupted_run(tmp_path):
    args = [*TINY, *GUESS, "training.max_steps=5", "training.save_every=2"]
    reference = tmp_path / "reference"
    assert run_until_killed(args, reference).returncode == 0
    killed = tmp_path / "killed"
    result = run_until_killed(args, killed, "step:4")
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metrics_without_time(killed) == metrics_without_time(reference)
    assert summary_without_paths(killed) == summary_without_paths(reference)
    for step in range(1, 6):  # the episodes of every step, also those written again after the resume
        name = f"episodes/step_{step:06d}.jsonl"
        assert (killed / name).read_text() == (reference / name).read_text(), name


@pytest.mark.slow
def test_mcp_start_run_with_an_env_override(tmp_path):
    from tinkerx.mcp.session import TrainingSession

    def call(session: TrainingSession, tool: str, **arguments: Any) -> Any:
        started = time.time()
        result = getattr(session, tool)(**arguments)
        session.records.tool_call(tool, arguments, started, result)
        return result

    session = TrainingSession(tmp_path / "session", ["model=tiny", "backend=local"])
    started = call(session, "start_run", overrides=[*GUESS, "training.max_steps=2"])
    assert started["method"] == "grpo" and started["total_steps"] == 2
    assert started["baseline"]["num_episodes"] == 4 and "success_rate" in started["baseline"]
    trained = call(session, "train_step", steps=2)
    assert trained["step"] == 2 and "episodes/turns" in trained["metrics"][-1]
    summary = call(session, "finish")
    assert summary["status"] == "finished" and "success_rate" in summary["final"]
    assert (session.dir / "run01_grpo" / "episodes" / "step_000002.jsonl").is_file()

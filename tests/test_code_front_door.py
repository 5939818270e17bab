"""GRPO on code through the front doors: a killed run resumed, and an MCP agent's session.

The tiny model with random weights writes mostly noise; graded by ``assert True`` a completion
passes exactly when it is a program that loads (an empty or a one-token completion often is), so
its groups mix passes, compile errors and load errors: the updates and the outcome counts are real.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.helpers.mcp import call, run_session
from tests.helpers.resume import resume, run_until_killed, summary_without_paths
from tests.helpers.runs import metrics_without_time
from tinkerx.sandbox import OUTCOMES

pytestmark = pytest.mark.slow


def _programs_that_load(path: Path, n: int = 16) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"question": f"f(x) = x + {i}", "answer": "assert True"}) + "\n")
    return path


def _grpo(data: Path) -> list[str]:
    return ["model=tiny", "backend=local", "method=grpo", "dataset=jsonl", f"dataset.path={data}", "dataset.test_size=4", "dataset.validation_size=0",
            "reward=code_tests", "reward.workers=2", "optim.lr=1e-3", "sampling.max_tokens=4", "evaluator.max_tokens=4",
            "training.max_steps=6", "training.batch_size=4", "method.group_size=4", "training.save_every=3",
            "training.eval_every=3", "seed=3"]


@pytest.mark.timeout(900)
def test_grpo_on_code_killed_and_resumed_equals_the_uninterrupted_run(tmp_path):
    args = _grpo(_programs_that_load(tmp_path / "tasks.jsonl"))
    reference = tmp_path / "reference"
    done = run_until_killed(args, reference)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = metrics_without_time(reference)
    steps = [r for r in rows if "reward/mean" in r]
    # Each step's outcome counts are that step's 16 executions, whatever ran before it.
    assert len(steps) == 6 and all(sum(r[f"code/{k}"] for k in OUTCOMES) == 16 for r in steps), steps
    assert sum(r["code/passed"] for r in steps) > 0 and sum(r["train/datums"] > 0 for r in steps) > 0

    killed = tmp_path / "killed"
    result = run_until_killed(args, killed, "step:5")
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metrics_without_time(killed) == rows
    assert summary_without_paths(killed) == summary_without_paths(reference)
    final = lambda run: (Path(json.loads((run / "summary.json").read_text())["checkpoint"]) / "weights.safetensors").read_bytes()
    assert final(killed) == final(reference)


@pytest.mark.timeout(600)
def test_mcp_init_grpo_with_code_tests_trains_and_reports_outcomes(tmp_path):
    tasks = _programs_that_load(tmp_path / "tasks.jsonl")
    holdout = _programs_that_load(tmp_path / "holdout.jsonl", 4)
    seen: dict = {}

    async def agent(client) -> None:
        started = await call(client, "init_grpo", prompts_path=str(tasks), holdout_path=str(holdout), reward="code_tests",
                             group_size=4, groups_per_batch=4, max_tokens=4, max_steps=4, eval_every=0, lr=1e-3, seed=3)
        seen["started"] = started
        seen["trained"] = await call(client, "train_grpo_step", iterations=2)
        seen["summary"] = await call(client, "finish")

    session = tmp_path / "session"
    run_session(session, agent)
    # The reward was tried on the data before the run: a code reward that cannot grade would be refused.
    assert seen["started"]["reward_check"]["scores"], seen["started"]
    iterations = seen["trained"]["iterations"]
    assert [it["step"] for it in iterations] == [1, 2]
    for it in iterations:
        # Why rewards are 0, per iteration: 4 prompts x 4 samples, each execution's outcome counted.
        assert set(it["code"]) == set(OUTCOMES) and sum(it["code"].values()) == 16, it
        assert it["reward_mean"] == pytest.approx(it["code"]["passed"] / 16)
    rows = [json.loads(line) for line in (session / "run01_grpo" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("code/passed", 0) + r.get("code/compile_error", 0) + r.get("code/error", 0) for r in rows) > 0

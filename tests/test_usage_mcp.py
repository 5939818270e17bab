"""MCP ``status`` says what the agent's run has spent, and that its budget stopped it."""

from __future__ import annotations

from tinkerx.mcp.session import TrainingSession


def test_status_shows_the_runs_tokens_and_its_budget(tmp_path):
    session = TrainingSession(tmp_path / "session", ["model=tiny", "backend=local"])
    session.start_run(["method=sft", "dataset=arithmetic", "dataset.digits=1", "dataset.train_size=20", "dataset.validation_size=0",
                       "dataset.test_size=4", "evaluator.max_examples=4", "training.max_steps=4", "training.batch_size=4",
                       "training.max_tokens=1"])  # fmt: skip
    result = session.train_step(steps=3)
    assert result["steps_run"] == 1 and result["stopped_early"]  # the first step crossed the 1-token budget
    status = session.status()
    usage = status["usage"]
    assert usage["train_tokens"] > 0 and usage["total_tokens"] == usage["prefill_tokens"] + usage["sample_tokens"] + usage["train_tokens"]
    assert usage["cost"].startswith("unknown") and "training.max_tokens=1" in status["budget_reached"]
    assert status["last_metrics"]["usage/total_tokens"] == usage["total_tokens"]
    assert session.finish()["status"] == "budget_reached"

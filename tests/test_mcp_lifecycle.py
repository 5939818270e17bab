"""The MCP session on the run lifecycle every front door shares: any method through the generic
``start_run`` tool, resume points an agent's run writes like a CLI run, and replays of both."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tinkerx.mcp.session import TrainingSession
from tinkerx.runs.compare import compare_metrics

pytestmark = pytest.mark.slow

SERVER = ["model=tiny", "backend=local"]


def call(session: TrainingSession, tool: str, **arguments: Any) -> Any:
    """A tool call made and recorded as the server makes and records it (``tool_calls.jsonl``)."""
    started = time.time()
    result = getattr(session, tool)(**arguments)
    session.records.tool_call(tool, arguments, started, result)
    return result


def write_pairs(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"{i}+1=", "chosen": str(i + 1), "rejected": "no"}) + "\n" for i in range(n)))
    return path


def steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_dpo_through_the_generic_tool_and_its_replay(tmp_path, capsys):
    from tinkerx import reproduce

    pairs = write_pairs(tmp_path / "pairs.jsonl", 24)
    overrides = ["method=dpo", "dataset=preference_jsonl", f"dataset.path={pairs}", "dataset.test_size=6", "~reward", "~evaluator",
                 "training.max_steps=4", "training.batch_size=6", "training.save_every=2", "training.eval_every=0", "optim.lr=1e-3"]  # fmt: skip
    session = TrainingSession(tmp_path / "session", SERVER)
    started = call(session, "start_run", overrides=overrides)
    assert started["method"] == "dpo" and started["total_steps"] == 4 and started["train_examples"] == 18
    assert started["baseline"]["pref_accuracy"] == 0.5  # policy == reference: every held-out pair a tie
    trained = call(session, "train_step", steps=3)
    assert (trained["steps_run"], trained["step"], [r["step"] for r in trained["metrics"]]) == (3, 3, [1, 2, 3])
    assert call(session, "status")["method"] == "dpo"
    rest = call(session, "train_step", steps=5)  # one step of the schedule is left
    assert (rest["steps_run"], rest["step"], rest["stopped_early"]) == (1, 4, False)
    summary = call(session, "finish")
    assert summary["status"] == "finished" and summary["final"]["pref_margin"] > 0

    run_dir = session.dir / "run01_dpo"
    for name in ("config.yaml", "environment.json", "metrics.jsonl", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert steps(run_dir) == [0, 1, 2, 3, 4] and (run_dir / "resume" / "step_000002").is_dir()
    assert [c["tool"] for c in map(json.loads, (session.dir / "tool_calls.jsonl").read_text().splitlines())] == ["start_run", "train_step", "status", "train_step", "finish"]

    # python -m tinkerx.reproduce SESSION_DIR: the calls again, the same metrics line for line.
    again = tmp_path / "again"
    reproduce.main([str(session.dir), f"hydra.run.dir={again}"])
    assert "metrics.jsonl matches the original line for line" in capsys.readouterr().err
    assert compare_metrics(run_dir, again / "run01_dpo") is None
    assert json.loads((again / "run01_dpo" / "summary.json").read_text())["status"] == "finished"


def test_a_killed_session_loses_nothing_and_resume_finishes_its_run(tmp_path):
    from tinkerx.resume import resume_run

    overrides = ["method=sft", "dataset=arithmetic", "dataset.digits=1", "dataset.train_size=40", "dataset.validation_size=0",
                 "dataset.test_size=8", "evaluator.max_examples=8", "sampling.max_tokens=3", "training.batch_size=8",
                 "training.max_steps=6", "training.save_every=2", "method.validation_every=0"]  # fmt: skip
    killed = TrainingSession(tmp_path / "killed", SERVER)
    call(killed, "start_run", overrides=overrides)
    assert call(killed, "train_step", steps=3)["step"] == 3
    run_dir = killed.dir / "run01_sft"
    del killed  # the server killed: no finish, no close, nothing written after step 3
    assert not (run_dir / "summary.json").exists() and (run_dir / "resume" / "step_000002").is_dir()

    summary = resume_run(run_dir, [])
    assert summary["status"] == "finished" and "final" in summary
    assert steps(run_dir) == [1, 2, 3, 4, 5, 6]  # step 3 ran again from the step-2 point, once

    # The same run driven without a kill: the resumed one equals it, timing aside.
    whole = TrainingSession(tmp_path / "whole", SERVER)
    call(whole, "start_run", overrides=overrides)
    call(whole, "train_step", steps=6)
    call(whole, "finish")
    assert compare_metrics(whole.dir / "run01_sft", run_dir) is None


def test_a_refused_start_keeps_the_run_in_progress(tmp_path):
    from tinkerx.errors import UserError

    session = TrainingSession(tmp_path / "session", SERVER)
    call(session, "start_run", overrides=["method=sft", "dataset=arithmetic", "dataset.digits=1", "dataset.train_size=20", "dataset.validation_size=0",
                                          "dataset.test_size=4", "evaluator.max_examples=4", "training.max_steps=2", "training.batch_size=4"])  # fmt: skip
    with pytest.raises(UserError, match="missing.jsonl"):
        session.start_run(["method=dpo", "dataset=preference_jsonl", f"dataset.path={tmp_path / 'missing.jsonl'}", "~reward", "~evaluator"])
    with pytest.raises(UserError, match="unknown method option 'nope'"):
        session.start_run(["method=nope"])
    assert session.status()["method"] == "sft" and not session.status()["finished"]
    assert sorted(p.name for p in session.dir.iterdir() if p.name.startswith("run")) == ["run01_sft"]
    assert call(session, "train_step", steps=2)["step"] == 2


def test_a_start_missing_a_required_value_names_it_and_leaves_no_folder(tmp_path):
    from tinkerx.errors import ConfigError

    session = TrainingSession(tmp_path / "session", SERVER)
    with pytest.raises(ConfigError, match="dataset.path is required"):
        session.start_run(["method=dpo", "dataset=preference_jsonl", "~reward", "~evaluator"])
    assert not [p for p in session.dir.iterdir() if p.name.startswith("run")]


def test_the_guided_tools_use_only_the_method_protocol_and_replay(tmp_path, capsys):
    from tinkerx import reproduce

    rows = "".join(json.dumps({"question": f"{a}+{b}=", "answer": str(a + b)}) + "\n" for a in range(6) for b in range(6))
    (tmp_path / "sums.jsonl").write_text(rows)
    session = TrainingSession(tmp_path / "session", SERVER)
    started = call(session, "init_sft", examples_path=str(tmp_path / "sums.jsonl"), holdout_path=str(tmp_path / "sums.jsonl"),
                   batch_size=4, max_steps=6, max_tokens=3, validation_every=0)  # fmt: skip
    assert started["method"] == "sft" and started["reward_check"]["scores"] == [1.0] * 4
    call(session, "train_sft_step", steps=2)
    saved = call(session, "save", name="a")
    call(session, "train_step", steps=2)
    assert call(session, "load", name_or_path="a") == {"loaded": saved["path"], "with_optimizer": True, "step": 4}
    sampled = call(session, "sample", prompts=["2+2="], n=2, temperature=1.0)
    assert len(sampled["samples"][0]["completions"]) == 2
    assert "accuracy" in call(session, "evaluate")["metrics"]
    assert [c["name"] for c in call(session, "list_checkpoints")["checkpoints"]] == ["a"]
    call(session, "finish")

    reproduce.main([str(session.dir), f"hydra.run.dir={tmp_path / 'again'}"])
    assert "metrics.jsonl matches the original line for line" in capsys.readouterr().err

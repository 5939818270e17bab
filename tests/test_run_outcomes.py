"""How a run ends when it cannot do what was asked: nothing half-made left behind, and a run that
learned nothing says so."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_a_run_that_fails_before_its_first_step_leaves_only_failed_txt(tmp_path):
    run_dir = tmp_path / "run"
    missing = tmp_path / "missing.jsonl"
    result = run_cli(["dataset=jsonl", f"dataset.path={missing}", f"hydra.run.dir={run_dir}"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "failed.txt"]
    assert str(missing) in (run_dir / "failed.txt").read_text()


def test_a_run_folder_that_holds_a_run_is_never_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    result = run_cli(["training.max_steps=1", f"hydra.run.dir={run_dir}"])
    assert result.returncode == 2 and "already holds a run" in result.stderr and "tinkerx.resume" in result.stderr
    assert (run_dir / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_grpo_that_never_updates_says_why(tmp_path):
    """An untrained tiny model never gets an exact match: every group is ALL-0, so no update is made."""
    run_dir = tmp_path / "grpo"
    args = [
        "method=grpo", "model=tiny", "dataset=arithmetic", "reward=exact_match", "sampling.max_tokens=4",
        "training.max_steps=2", "training.batch_size=2", "method.group_size=2", "~evaluator", "training.save_every=0",
    ]  # fmt: skip
    result = run_cli([*args, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["updates"] == 0 and "no GRPO update was made" in summary["warning"]
    assert "truncat" in summary["warning"] and "no GRPO update was made" in result.stderr

"""environment.json: the git state (the real one, untracked files aside) and the CPU a run rounded its sums on."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tinkerx.runs.compare import float_agreement
from tinkerx.runs.environment import cpu, cpu_difference, git_state


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@x", "-c", "user.name=t", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "code.py")
    git("commit", "-qm", "init")
    return tmp_path


def test_clean_checkout_with_untracked_files_is_not_dirty(repo):
    (repo / "outputs").mkdir()
    (repo / "outputs" / "run.log").write_text("a run folder\n")
    state = git_state(repo)
    assert state["dirty"] is False and state["changed_files"] == [] and state["untracked"] == 1
    assert len(state["commit"]) == 40 and state["diff_sha256"] is None


def test_a_changed_tracked_file_is_dirty_and_named(repo):
    (repo / "code.py").write_text("x = 2\n")
    state = git_state(repo)
    assert state["dirty"] is True and state["changed_files"] == ["code.py"]
    first = state["diff_sha256"]
    (repo / "code.py").write_text("x = 3\n")
    assert git_state(repo)["diff_sha256"] not in (None, first)


def test_not_a_checkout(tmp_path):
    assert git_state(tmp_path)["dirty"] is None


def _env(run_dir, **fields):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "environment.json").write_text(json.dumps({"torch_threads": 1, **fields}))
    return run_dir


def test_a_run_on_another_cpu_is_told_apart_from_one_on_this_cpu(tmp_path):
    here = cpu()
    assert here["capability"]  # torch's name for its kernels here: AVX2, AVX512, DEFAULT, SVE, ...
    assert cpu_difference(_env(tmp_path / "same", cpu=here)) is None
    other = {"model": "Some Other CPU", "capability": "AVX512" if here["capability"] != "AVX512" else "AVX2"}
    note = cpu_difference(_env(tmp_path / "other", cpu=other))
    assert "Some Other CPU with " + other["capability"] in note and here["capability"] in note
    # Recorded before CPUs were recorded: said so, not taken for the same machine.
    assert "did not record its CPU" in cpu_difference(_env(tmp_path / "old"))
    assert cpu_difference(tmp_path / "no-folder") is None


def _metrics(run_dir, rows):
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


def test_float_agreement_measures_rounding_and_refuses_other_samples(tmp_path):
    original = _metrics(tmp_path / "a", [{"step": 1, "reward/mean": 0.5, "train/loss": 2.0, "train/kl": 1e-10, "time/step_s": 3.0}])
    rounded = _metrics(tmp_path / "b", [{"step": 1, "reward/mean": 0.5, "train/loss": 2.00002, "train/kl": -2e-10, "time/step_s": 9.0}])
    assert float_agreement(original, rounded) == pytest.approx(1e-5, rel=1e-3)
    other_rewards = _metrics(tmp_path / "c", [{"step": 1, "reward/mean": 0.625, "train/loss": 2.0, "train/kl": 1e-10}])
    assert float_agreement(original, other_rewards) == pytest.approx(0.2)
    other_count = _metrics(tmp_path / "e", [{"step": 1, "reward/mean": 0.5, "train/loss": 2.0, "train/kl": 1e-10, "train/datums": 3}])
    assert float_agreement(original, other_count) is None
    fewer = _metrics(tmp_path / "d", [])
    assert float_agreement(original, fewer) is None

"""environment.json's git state: the real one, untracked files aside."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tinkerx.runs.environment import git_state


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

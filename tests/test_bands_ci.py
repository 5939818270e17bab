"""The fast shipped experiments land inside the reference bands written in their configs, also after
a kill and a resume. A change that moves a demo out of its measured range fails here.

Each experiment runs as a user runs it (``python -m tinkerx experiment=NAME``, one torch thread, as
tests do); the band is judged by the run itself (``summary.json``: ``band``, ``bands``)."""

from __future__ import annotations

import json
import signal

import pytest

from tests.helpers.resume import resume, run_until_killed

pytestmark = pytest.mark.slow

# The fastest experiments carrying bands (about 2 minutes each on 2 CPU cores), and where to kill one.
FAST = ["grpo_tiny_arithmetic_from_scratch"]
KILL_AT = ("grpo_tiny_arithmetic_from_scratch", "step:30")


def _inside(run_dir) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["bands"], "the experiment declares no bands"
    outside = [b for b in summary["bands"] if b["verdict"] != "inside"]
    assert summary["band"] == "inside", f"left its reference band: {outside}"
    return summary


@pytest.mark.parametrize("experiment", FAST)
def test_fast_experiment_lands_in_its_band(tmp_path, experiment):
    result = run_until_killed([f"experiment={experiment}"], tmp_path / experiment)
    assert result.returncode == 0, result.stderr[-3000:]
    _inside(tmp_path / experiment)
    assert "band: outside" not in result.stdout + result.stderr


def test_killed_and_resumed_run_lands_in_its_band(tmp_path):
    experiment, kill_at = KILL_AT
    run_dir = tmp_path / experiment
    killed = run_until_killed([f"experiment={experiment}"], run_dir, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _inside(run_dir)

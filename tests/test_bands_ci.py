"""The fast shipped experiments land inside the reference bands written in their configs, also after
a kill and a resume. A change that moves a demo out of its measured range fails here.

Each experiment runs as a user runs it (``python -m tinkerx experiment=NAME``, one torch thread, as
tests do); the band is judged by the run itself (``summary.json``: ``band``, ``bands``). The SFT warm
start runs once and GRPO starts from it, as the README's demo chain does."""

from __future__ import annotations

import json
import signal

import pytest

from tests.helpers.resume import resume, run_until_killed

pytestmark = pytest.mark.slow

WARM_START = "sft_tiny_arithmetic_short"
# Experiments that need nothing before them, and where a killed run of each is stopped.
STANDALONE = ["grpo_tiny_arithmetic_from_scratch"]
KILL_AT = {"sft_tiny_arithmetic_short": "step:130", "grpo_tiny_arithmetic_from_scratch": "step:30"}


def _inside(run_dir) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["bands"], "the experiment declares no bands"
    outside = [b for b in summary["bands"] if b["verdict"] != "inside"]
    assert summary["band"] == "inside", f"left its reference band: {outside}"
    return summary


def _ran_inside(result, run_dir) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    _inside(run_dir)
    assert "band: outside" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def warm_start(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("bands") / WARM_START
    return run_dir, run_until_killed([f"experiment={WARM_START}"], run_dir)


def test_the_warm_start_lands_in_its_band(warm_start):
    run_dir, result = warm_start
    _ran_inside(result, run_dir)


def test_grpo_from_the_warm_start_lands_in_its_band(warm_start, tmp_path):
    warm_dir, warm = warm_start
    assert warm.returncode == 0, warm.stderr[-3000:]
    run_dir = tmp_path / "grpo_tiny_arithmetic"
    _ran_inside(run_until_killed(["experiment=grpo_tiny_arithmetic", f"method.init_from={warm_dir}"], run_dir), run_dir)


@pytest.mark.parametrize("experiment", STANDALONE)
def test_fast_experiment_lands_in_its_band(tmp_path, experiment):
    _ran_inside(run_until_killed([f"experiment={experiment}"], tmp_path / experiment), tmp_path / experiment)


@pytest.mark.parametrize("experiment", sorted(KILL_AT))
def test_killed_and_resumed_run_lands_in_its_band(tmp_path, experiment):
    run_dir = tmp_path / experiment
    killed = run_until_killed([f"experiment={experiment}"], run_dir, KILL_AT[experiment])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _inside(run_dir)

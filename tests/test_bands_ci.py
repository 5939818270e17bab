"""The fast shipped experiments land inside the reference bands written in their configs, also after
a kill and a resume. A change that moves a demo out of its measured range fails here.

Each experiment runs as a user runs it (``python -m tinkerx experiment=NAME``, one torch thread, as
tests do); the band is judged by the run itself (``summary.json``: ``band``, ``bands``). The SFT warm
start is trained from the main job and GRPO starts from it, as the README's demo chain does; the two
SFT stages are killed (SIGKILL) midway and resumed. The guessing game's chain (demonstrations, SFT on
them killed and resumed, multi-turn GRPO) runs the same way."""

from __future__ import annotations

import json
import signal

import pytest

from tests.helpers.resume import resume, run_module, run_until_killed

pytestmark = pytest.mark.slow

# The README's demo chain: the main job, the warm start trained from it, GRPO from the warm start.
MAIN_JOB, WARM_START = "sft_tiny_arithmetic", "sft_tiny_arithmetic_short"
# Experiments that need nothing before them, and where a killed run of each is stopped. They run killed
# and resumed only: a band held after a resume is the stronger check, and the chains' GRPO runs go straight.
STANDALONE = ["grpo_tiny_arithmetic_from_scratch"]
KILL_AT = {MAIN_JOB: "step:500", WARM_START: "step:80", "grpo_tiny_arithmetic_from_scratch": "step:30", "sft_tiny_chat_guess_number": "step:150"}
# A shipped demo runs as long as a user's: the main job's 1000 steps take ~550 s on one thread of an idle
# AVX2 core, more beside the other test worker or on a slower machine, so each subprocess gets 30 minutes.
RUN_TIMEOUT = 1800
# The demonstrations the guessing game's warm start imitates, as its YAML writes them.
GUESS_DEMOS = ["env=guess_number", "env.high=15", "env.train_size=1000", "env.demo_binary_share=0.3"]


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


def _killed_and_resumed(args: list[str], run_dir, kill_at: str) -> None:
    killed = run_until_killed(args, run_dir, kill_at, timeout=RUN_TIMEOUT)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = resume(run_dir, timeout=RUN_TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _inside(run_dir)


def test_the_demo_chain_lands_in_its_bands_also_killed_and_resumed(tmp_path):
    """One test, so the chain runs once (a module fixture would run on each xdist worker)."""
    main, warm, grpo = tmp_path / MAIN_JOB, tmp_path / WARM_START, tmp_path / "grpo_tiny_arithmetic"
    _killed_and_resumed([f"experiment={MAIN_JOB}"], main, KILL_AT[MAIN_JOB])
    _killed_and_resumed([f"experiment={WARM_START}", f"method.init_from={main}"], warm, KILL_AT[WARM_START])
    _ran_inside(run_until_killed(["experiment=grpo_tiny_arithmetic", f"method.init_from={warm}"], grpo, timeout=RUN_TIMEOUT), grpo)


@pytest.mark.parametrize("experiment", STANDALONE)
def test_killed_and_resumed_run_lands_in_its_band(tmp_path, experiment):
    _killed_and_resumed([f"experiment={experiment}"], tmp_path / experiment, KILL_AT[experiment])


def test_the_guessing_game_chain_lands_in_its_bands_also_killed_and_resumed(tmp_path):
    demos, sft, grpo = tmp_path / "demos.jsonl", tmp_path / "sft_tiny_chat_guess_number", tmp_path / "grpo_tiny_guess_number_from_sft"
    written = run_module([*GUESS_DEMOS, "--out", str(demos)], module="tinkerx.envs.demonstrations")
    assert written.returncode == 0, written.stderr[-2000:]
    _killed_and_resumed(["experiment=sft_tiny_chat_guess_number", f"dataset.path={demos}"], sft, KILL_AT["sft_tiny_chat_guess_number"])
    _ran_inside(run_until_killed(["experiment=grpo_tiny_guess_number_from_sft", f"method.init_from={sft}"], grpo, timeout=RUN_TIMEOUT), grpo)

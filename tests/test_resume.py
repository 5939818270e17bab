"""Resume: a run killed at any moment continues to exactly the result of an uninterrupted run.

Each case runs the real CLI in a subprocess: once uninterrupted, once SIGKILLed at a chosen point
(``TINKERX_KILL_AT``, see ``tinkerx.runs.faults``) or by a signal from outside, then resumed with
``python -m tinkerx.resume``. Metrics (timing aside), the summary and the final weights must be equal.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.helpers.resume import DATA, DEBATE, GRPO, SFT, TINY, resume, run_module, run_until_killed, summary_without_paths
from tests.helpers.runs import metrics_without_time

pytestmark = pytest.mark.slow

def _final_weights_hash(run_dir: Path) -> str:
    summary = json.loads((run_dir / "summary.json").read_text())
    paths = [summary["checkpoint"]] if "checkpoint" in summary else sorted(summary["checkpoints"].values())
    digest = hashlib.sha256()
    for path in paths:
        digest.update((Path(path) / "weights.safetensors").read_bytes())
    return digest.hexdigest()


def _assert_same_run(reference: Path, resumed: Path) -> None:
    assert metrics_without_time(resumed) == metrics_without_time(reference)
    assert summary_without_paths(resumed) == summary_without_paths(reference)
    assert _final_weights_hash(resumed) == _final_weights_hash(reference)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted runs, one per method, made on first use."""
    made: dict[str, Path] = {}

    def get(name: str, args: list[str]) -> Path:
        if name not in made:
            run_dir = tmp_path_factory.mktemp("reference") / name
            result = run_until_killed(args, run_dir)
            assert result.returncode == 0, result.stderr[-3000:]
            made[name] = run_dir
        return made[name]

    return get


@pytest.mark.parametrize(
    "kill_at",
    [
        "step:9",  # mid-run, a step computed but not recorded: steps 7-9 run again
        "checkpoint:12",  # while a resume point is being written: the one at step 6 is used
        "backend_checkpoint:18",  # while the weights are being written under their temporary name
    ],
)
def test_sft_killed_and_resumed_equals_uninterrupted(tmp_path, references, kill_at):
    reference = references("sft", SFT)
    killed = tmp_path / "sft"
    result = run_until_killed(SFT, killed, kill_at)
    assert result.returncode == -signal.SIGKILL, (kill_at, result.returncode, result.stderr[-2000:])
    assert not (killed / "summary.json").exists()
    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumingatstep" in "".join(resumed.stderr.split())
    _assert_same_run(reference, killed)
    assert len((killed / "resumes.jsonl").read_text().splitlines()) == 1


def test_grpo_killed_and_resumed_equals_uninterrupted(tmp_path, references):
    reference = references("grpo", GRPO)
    for kill_at in ("step:5", "checkpoint:6"):
        killed = tmp_path / kill_at.replace(":", "_")
        result = run_until_killed(GRPO, killed, kill_at)
        assert result.returncode == -signal.SIGKILL, (kill_at, result.stderr[-2000:])
        resumed = resume(killed)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        _assert_same_run(reference, killed)
        samples = [json.loads(line)["step"] for line in (killed / "samples.jsonl").read_text().splitlines()]
        assert samples == sorted(samples) and len(samples) == len(set(zip(samples, range(len(samples)))))


def test_debate_killed_and_resumed_equals_uninterrupted(tmp_path, references, shared_data):
    args = [*DEBATE, f"dataset.path={shared_data / 'mmlu_stem' / 'test.jsonl'}"]
    reference = references("debate", args)
    killed = tmp_path / "debate"
    result = run_until_killed(args, killed, "step:3")
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(reference, killed)


def _sft_running_until(run_dir: Path, steps: int, **popen: object) -> subprocess.Popen:
    """The SFT run started in the background, returned once ``steps`` metric lines are written."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tinkerx", *SFT, f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env, **popen)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < steps):
        time.sleep(0.05)
    return proc


def test_sigkill_from_outside_at_an_arbitrary_moment(tmp_path, references):
    """As in real life: the kill lands wherever the run happens to be."""
    reference = references("sft", SFT)
    run_dir = tmp_path / "sft"
    proc = _sft_running_until(run_dir, 14, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(reference, run_dir)


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path, references):
    reference = references("sft", SFT)
    run_dir = tmp_path / "sft"
    proc = _sft_running_until(run_dir, 4, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 4 <= summary["steps"] < 24
    assert len(metrics_without_time(run_dir)) == summary["steps"]
    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(reference, run_dir)


def test_a_stop_while_the_run_starts_keeps_its_start_and_resumes(tmp_path, references):
    """A SIGTERM that lands before the first step (here just after the baseline evaluation): the run
    stops with a resume point at step 0, so ``tinkerx.resume`` goes on from there without doing the
    start again, to the uninterrupted run's result."""
    from tinkerx.runs import resume_points

    reference = references("sft", SFT)
    run_dir = tmp_path / "sft"
    result = run_module([*SFT, f"hydra.run.dir={run_dir}"], env={"TINKERX_SIGTERM_AT": "started:0"})
    assert result.returncode == 143, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == 0
    assert [p.name for p in resume_points.points(run_dir)] == ["step_000000"]
    baseline = (run_dir / "eval" / "baseline.jsonl").stat().st_mtime_ns
    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumingatstep0" in "".join(resumed.stderr.split())
    assert (run_dir / "eval" / "baseline.jsonl").stat().st_mtime_ns == baseline  # not evaluated again
    _assert_same_run(reference, run_dir)


def test_resume_errors_are_one_line(tmp_path, references):
    reference = references("sft", SFT)
    finished = resume(reference)
    assert finished.returncode == 2 and "is finished" in finished.stderr and "Traceback" not in finished.stderr
    changed = resume(reference, "optim.lr=1")
    assert changed.returncode == 2 and "cannot change when resuming" in changed.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.yaml").write_text((reference / "config.yaml").read_text())
    nothing = resume(empty)
    assert nothing.returncode == 2 and "no resume points" in nothing.stderr, nothing.stderr
    missing = resume(tmp_path / "nope")
    assert missing.returncode == 2 and "no run folder" in missing.stderr


def test_a_damaged_resume_point_falls_back_to_the_previous_one(tmp_path, references):
    reference = references("sft", SFT)
    killed = tmp_path / "sft"
    assert run_until_killed(SFT, killed, "step:20").returncode == -signal.SIGKILL
    newest = sorted((killed / "resume").iterdir())[-1]
    assert newest.name == "step_000018"
    (newest / "method_state.json").write_text("{}")  # damaged after the fact: its hash no longer matches
    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = "".join(resumed.stderr.split())
    assert "step_000018isdamaged" in said and "resumingatstep12" in said
    _assert_same_run(reference, killed)


def test_a_killed_sweep_resumes_skipping_finished_trials(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, *DATA, "method=sft", "training.batch_size=16", "training.save_every=3", "method.validation_every=0", "training.max_steps=3,8", f"hydra.sweep.dir={sweep}"]
    killed = run_module(args, env={"TINKERX_KILL_AT": "step:6"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "config.yaml").is_file())
    assert len(trials) == 2 and not (trials[1] / "summary.json").exists()
    first_summary = (trials[0] / "summary.json").read_text()

    resumed = run_module([str(sweep)], module="tinkerx.resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = "".join(resumed.stderr.split())  # rich wraps long lines when stderr is not a terminal
    assert "finishedearlier,skipped" in said and "resumingatstep3" in said
    assert (trials[0] / "summary.json").read_text() == first_summary  # untouched
    for trial, steps in zip(trials, (3, 8)):
        assert [row["step"] for row in metrics_without_time(trial)] == list(range(1, steps + 1))
        assert json.loads((trial / "summary.json").read_text())["status"] == "finished"
    summary_csv = (sweep / "sweep_summary.csv").read_text().splitlines()
    assert len(summary_csv) == 3 and all(",completed," in row for row in summary_csv[1:])

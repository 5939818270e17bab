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

pytestmark = pytest.mark.slow

TINY = ["model=tiny", "dataset=arithmetic", "backend=local", "optim.lr=3e-3", "sampling.max_tokens=8", "seed=3"]
DATA = ["dataset.train_size=400", "dataset.validation_size=20", "dataset.test_size=20"]
SFT = [*TINY, *DATA, "method=sft", "training.max_steps=24", "training.batch_size=16", "training.save_every=6", "method.validation_every=5", "training.eval_every=10", "training.keep_checkpoints=null"]
GRPO = [*TINY, *DATA, "method=grpo", "training.max_steps=8", "training.batch_size=4", "method.group_size=4", "training.save_every=3", "training.eval_every=4", "sampling.temperature=1.0"]
DEBATE = [*TINY, "method=debate", "dataset=mmlu_stem", "method.num_debates=2", "method.rounds=1", "training.max_steps=4", "training.save_every=2", "components.judge.max_tokens=4"]

VOLATILE = ("run_dir", "wall_time_s", "checkpoint", "checkpoints", "path")


def _run(args: list[str], run_dir: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {"TINKERX_KILL_AT": kill_at} if kill_at else {}
    return _cli([*args, f"hydra.run.dir={run_dir}"], env=env)


def _cli(args: list[str], module: str = "tinkerx", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=600, cwd=ROOT, env=full_env)


def _metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def _scrub(value):
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _summary(run_dir: Path) -> dict:
    return _scrub(json.loads((run_dir / "summary.json").read_text()))


def _final_weights_hash(run_dir: Path) -> str:
    summary = json.loads((run_dir / "summary.json").read_text())
    paths = [summary["checkpoint"]] if "checkpoint" in summary else sorted(summary["checkpoints"].values())
    digest = hashlib.sha256()
    for path in paths:
        digest.update((Path(path) / "weights.safetensors").read_bytes())
    return digest.hexdigest()


def _resume(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return _cli([str(run_dir), *overrides], module="tinkerx.resume")


def _assert_same_run(reference: Path, resumed: Path) -> None:
    assert _metrics(resumed) == _metrics(reference)
    assert _summary(resumed) == _summary(reference)
    assert _final_weights_hash(resumed) == _final_weights_hash(reference)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted runs, one per method, made on first use."""
    made: dict[str, Path] = {}

    def get(name: str, args: list[str]) -> Path:
        if name not in made:
            run_dir = tmp_path_factory.mktemp("reference") / name
            result = _run(args, run_dir)
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
    result = _run(SFT, killed, kill_at)
    assert result.returncode == -signal.SIGKILL, (kill_at, result.returncode, result.stderr[-2000:])
    assert not (killed / "summary.json").exists()
    resumed = _resume(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumingatstep" in "".join(resumed.stderr.split())
    _assert_same_run(reference, killed)
    assert len((killed / "resumes.jsonl").read_text().splitlines()) == 1


def test_grpo_killed_and_resumed_equals_uninterrupted(tmp_path, references):
    reference = references("grpo", GRPO)
    for kill_at in ("step:5", "checkpoint:6"):
        killed = tmp_path / kill_at.replace(":", "_")
        result = _run(GRPO, killed, kill_at)
        assert result.returncode == -signal.SIGKILL, (kill_at, result.stderr[-2000:])
        resumed = _resume(killed)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        _assert_same_run(reference, killed)
        samples = [json.loads(line)["step"] for line in (killed / "samples.jsonl").read_text().splitlines()]
        assert samples == sorted(samples) and len(samples) == len(set(zip(samples, range(len(samples)))))


def test_debate_killed_and_resumed_equals_uninterrupted(tmp_path, references, shared_data):
    args = [*DEBATE, f"dataset.path={shared_data / 'mmlu_stem' / 'test.jsonl'}"]
    reference = references("debate", args)
    killed = tmp_path / "debate"
    result = _run(args, killed, "step:3")
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    resumed = _resume(killed)
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
    resumed = _resume(run_dir)
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
    assert len(_metrics(run_dir)) == summary["steps"]
    resumed = _resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(reference, run_dir)


def test_resume_errors_are_one_line(tmp_path, references):
    reference = references("sft", SFT)
    finished = _resume(reference)
    assert finished.returncode == 2 and "is finished" in finished.stderr and "Traceback" not in finished.stderr
    changed = _resume(reference, "optim.lr=1")
    assert changed.returncode == 2 and "cannot change when resuming" in changed.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.yaml").write_text((reference / "config.yaml").read_text())
    nothing = _resume(empty)
    assert nothing.returncode == 2 and "no resume points" in nothing.stderr, nothing.stderr
    missing = _resume(tmp_path / "nope")
    assert missing.returncode == 2 and "no run folder" in missing.stderr


def test_a_damaged_resume_point_falls_back_to_the_previous_one(tmp_path, references):
    reference = references("sft", SFT)
    killed = tmp_path / "sft"
    assert _run(SFT, killed, "step:20").returncode == -signal.SIGKILL
    newest = sorted((killed / "resume").iterdir())[-1]
    assert newest.name == "step_000018"
    (newest / "method_state.json").write_text("{}")  # damaged after the fact: its hash no longer matches
    resumed = _resume(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = "".join(resumed.stderr.split())
    assert "step_000018isdamaged" in said and "resumingatstep12" in said
    _assert_same_run(reference, killed)


def test_a_killed_sweep_resumes_skipping_finished_trials(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, *DATA, "method=sft", "training.batch_size=16", "training.save_every=3", "method.validation_every=0", "training.max_steps=3,8", f"hydra.sweep.dir={sweep}"]
    killed = _cli(args, env={"TINKERX_KILL_AT": "step:6"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "config.yaml").is_file())
    assert len(trials) == 2 and not (trials[1] / "summary.json").exists()
    first_summary = (trials[0] / "summary.json").read_text()

    resumed = _cli([str(sweep)], module="tinkerx.resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = "".join(resumed.stderr.split())  # rich wraps long lines when stderr is not a terminal
    assert "finishedearlier,skipped" in said and "resumingatstep3" in said
    assert (trials[0] / "summary.json").read_text() == first_summary  # untouched
    for trial, steps in zip(trials, (3, 8)):
        assert [row["step"] for row in _metrics(trial)] == list(range(1, steps + 1))
        assert json.loads((trial / "summary.json").read_text())["status"] == "finished"
    summary_csv = (sweep / "sweep_summary.csv").read_text().splitlines()
    assert len(summary_csv) == 3 and all(",completed," in row for row in summary_csv[1:])

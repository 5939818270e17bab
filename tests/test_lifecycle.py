"""The run lifecycle's endings, on a scripted method (no model): a failure after the first step
keeps everything and says so in summary.json, one before it leaves only failed.txt, and running
out of memory leaves the last periodic resume point to continue from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tinkerx.errors import OutOfMemoryError
from tinkerx.lifecycle import RunLifecycle
from tinkerx.pipeline import Pipeline
from tinkerx.runs import resume_points
from tinkerx.runs.recorder import RunRecorder
from tinkerx.runs.status import run_status
from tinkerx.settings import OptimSettings, SamplingSettings, TrainingSettings


class ScriptedMethod:
    """Counts steps; raises ``fail_with`` in step ``fail_at``; saves a one-file checkpoint."""

    name = "scripted"
    shown = ()

    def __init__(self, total_steps: int, fail_at: int | None = None, fail_with: BaseException | None = None) -> None:
        self.total_steps, self.fail_at, self.fail_with = total_steps, fail_at, fail_with
        self.step_index = 0

    def setup(self, p: Pipeline, resume: Any = None) -> None:
        self.p = p
        if resume is not None:
            self.step_index = resume.method_state["step_index"]

    def start(self) -> dict[str, Any]:
        return {"baseline/score": 0.0}

    def step(self) -> dict[str, Any]:
        if self.step_index + 1 == self.fail_at:
            raise self.fail_with
        self.step_index += 1
        return {"train/loss": 1.0 / self.step_index}

    def save(self, name: str) -> dict[str, str]:
        folder = self.p.run_dir / "checkpoints" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "weights").write_text(str(self.step_index))
        return {"policy": str(folder)}

    def state(self) -> dict[str, Any]:
        return {"step_index": self.step_index}

    def summary(self) -> dict[str, Any]:
        return {"steps": self.step_index}

    def finish(self) -> dict[str, Any]:
        return {**self.summary(), "final": {"score": 1.0}}


def lifecycle(run_dir: Path, method: ScriptedMethod, save_every: int = 2) -> RunLifecycle:
    training = TrainingSettings(batch_size=1, max_steps=method.total_steps, save_every=save_every)
    pipeline = Pipeline(run_dir=run_dir, seed=0, service=None, base_model="none", lora_rank=1, tokenizer=None, dataset=None,
                        recorder=RunRecorder(run_dir), optim=OptimSettings(), sampling=SamplingSettings(), training=training)  # fmt: skip
    return RunLifecycle.of(method, pipeline)


def steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_finished_run_records_every_step_and_its_summary(tmp_path):
    life = lifecycle(tmp_path, ScriptedMethod(5))
    life.begin()
    assert life.drive(steps=3) == 3 and life.steps_left == 2
    assert life.drive() == 2
    summary = life.finish()
    assert steps(tmp_path) == [0, 1, 2, 3, 4, 5]
    assert summary["status"] == "finished" and summary["final"] == {"score": 1.0} and life.ended
    # Resume points every 2 steps, none at the last step (the final checkpoint is the method's).
    assert sorted(p.name for p in resume_points.points(tmp_path)) == ["step_000002", "step_000004"]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "finished"


def test_a_stop_request_saves_a_resume_point_there(tmp_path):
    life = lifecycle(tmp_path, ScriptedMethod(6), save_every=0)
    life.begin()
    assert life.drive(stop=lambda: life.method.step_index == 3) == 3
    summary = life.stop("interrupted", signal=15)
    assert summary["status"] == "interrupted" and summary["signal"] == 15
    assert [p.name for p in resume_points.points(tmp_path)] == ["step_000003"]


def test_out_of_memory_keeps_the_run_and_its_last_resume_point(tmp_path):
    oom = OutOfMemoryError("out of memory in step 5 (sequences of 512 tokens): lower training.batch_size")
    life = lifecycle(tmp_path, ScriptedMethod(8, fail_at=5, fail_with=oom))
    life.begin()
    with pytest.raises(OutOfMemoryError) as raised:
        life.drive()
    life.fail(raised.value)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["steps"] == 4 and run_status(tmp_path) == "failed"
    assert summary["error"] == f"OutOfMemoryError: {oom}" and "tinkerx.resume" in summary["resume"]
    assert steps(tmp_path) == [0, 1, 2, 3, 4]  # nothing written for the failed step
    assert resume_points.latest_point(tmp_path, warn=print).step == 4
    assert not (tmp_path / "failed.txt").exists()


def test_a_failure_before_the_first_step_leaves_only_failed_txt(tmp_path):
    (tmp_path / ".hydra").mkdir()
    life = lifecycle(tmp_path, ScriptedMethod(4, fail_at=1, fail_with=ValueError("bad\n  input")))
    life.begin()
    with pytest.raises(ValueError) as raised:
        life.drive()
    life.fail(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hydra", "failed.txt"]
    assert (tmp_path / "failed.txt").read_text() == "ValueError: bad input\n" and run_status(tmp_path) == "failed"


def test_a_sweep_summary_counts_a_trial_that_failed_after_its_first_step_as_failed(tmp_path):
    from tinkerx.runs.sweep_summary import trial_row

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- training.batch_size=64\n")
    life = lifecycle(tmp_path, ScriptedMethod(4, fail_at=3, fail_with=OutOfMemoryError("out of memory in step 3")))
    life.begin()
    with pytest.raises(OutOfMemoryError) as raised:
        life.drive()
    life.fail(raised.value)
    row = trial_row(tmp_path)
    assert (row["status"], row["reason"]) == ("failed", "OutOfMemoryError: out of memory in step 3")

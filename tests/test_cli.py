"""The real CLI in a subprocess: a tiny SFT run, its reproduction, a sweep, and user mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

# A short run: enough steps for held-out accuracy to move, seconds on 2 cores.
QUICK = [
    "training.max_steps=60",
    "training.batch_size=32",
    "optim.warmup_steps=5",
    "dataset.train_size=1000",
    "dataset.test_size=60",
    "dataset.validation_size=40",
    "method.validation_every=20",
]


def _one_line_error(result, *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("cli") / "sft"
    result = run_cli([*QUICK, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_sft_run_folder_is_complete(sft_run):
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "environment.json", ".hydra/config.yaml", ".hydra/hydra.yaml", "eval/baseline.jsonl", "eval/final.jsonl"):
        assert (sft_run / name).is_file(), name
    summary = json.loads((sft_run / "summary.json").read_text())
    assert {"baseline", "final", "wall_time_s", "checkpoint"} <= set(summary)
    assert "accuracy" in summary["final"] and "accuracy" in summary["baseline"]
    assert Path(summary["checkpoint"], "weights.safetensors").is_file()
    rows = [json.loads(line) for line in (sft_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 61))
    assert any("val/loss" in r for r in rows)
    env = json.loads((sft_run / "environment.json").read_text())
    assert env["packages"]["torch"] and "commit" in env["git"]
    records = [json.loads(line) for line in (sft_run / "eval/final.jsonl").read_text().splitlines()]
    assert len(records) == 60 and {"question", "answer", "completion", "correct"} <= set(records[0])


@pytest.mark.slow
def test_sft_improves_held_out_accuracy(sft_run):
    summary = json.loads((sft_run / "summary.json").read_text())
    assert summary["final"]["accuracy"] > summary["baseline"]["accuracy"]
    rows = [json.loads(line) for line in (sft_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]


@pytest.mark.slow
def test_reproduce_matches_line_for_line(sft_run, tmp_path):
    new_dir = tmp_path / "again"
    result = run_cli([str(sft_run), f"hydra.run.dir={new_dir}"], module="tinkerx.reproduce")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "matches the original line for line" in result.stderr

    def rows(d):
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in (d / "metrics.jsonl").read_text().splitlines()]

    assert rows(new_dir) == rows(sft_run)
    original = json.loads((sft_run / "summary.json").read_text())
    again = json.loads((new_dir / "summary.json").read_text())
    assert again["final"] == original["final"]


@pytest.mark.slow
def test_reproduce_restores_group_choices(tmp_path):
    run_dir = tmp_path / "choices"
    result = run_cli(["dataset=jsonl", f"dataset.path={_qa_file(tmp_path)}", "training.max_steps=2", "method.evaluate_baseline=false", "evaluator.max_examples=4", f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    again = tmp_path / "choices-again"
    result = run_cli([str(run_dir), "training.max_steps=1", f"hydra.run.dir={again}"], module="tinkerx.reproduce")
    assert result.returncode == 0, result.stderr[-3000:]
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(again / "config.yaml")
    assert cfg.dataset._target_.endswith("JsonlQA") and cfg.training.max_steps == 1


@pytest.mark.slow
def test_multirun_sweeps_lr_and_temperature(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(["-m", "optim.lr=1e-3,3e-3", "sampling.temperature=0.7,1.0", "training.max_steps=2", "method.evaluate_baseline=false",
                      "evaluator.max_examples=4", "dataset.train_size=64", f"hydra.sweep.dir={sweep_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    trials = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(trials) == 4
    seen = set()
    for trial in trials:
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(trial / "config.yaml")
        seen.add((cfg.optim.lr, cfg.sampling.temperature))
        assert (trial / "summary.json").is_file()
    assert seen == {(1e-3, 0.7), (1e-3, 1.0), (3e-3, 0.7), (3e-3, 1.0)}


def _qa_file(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"question": f"{i}+1=", "answer": str(i + 1)}) + "\n" for i in range(40)))
    return path


# ---- bad input -------------------------------------------------------------------------------

def test_unknown_group_option_names_valid_choices():
    line = _one_line_error(run_cli(["method=rlhf"]), "method", "'rlhf'", "sft")
    assert "valid:" in line


def test_unknown_key_is_one_line():
    _one_line_error(run_cli(["optim.learning_rate=1e-3"]), "optim.learning_rate")


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("optim.lr=0", "optim.lr must be > 0"),
        ("optim.lr=-1e-4", "optim.lr must be > 0"),
        ("training.batch_size=0", "training.batch_size must be >= 1"),
        ("sampling.max_tokens=0", "sampling.max_tokens must be >= 1"),
        ("method.loss_fn=hinge", "method.loss_fn 'hinge'"),
    ],
)
def test_invalid_values_stop_before_any_work(override, fragment, tmp_path):
    run_dir = tmp_path / "run"
    _one_line_error(run_cli([override, f"hydra.run.dir={run_dir}"]), fragment)
    assert not (run_dir / "metrics.jsonl").exists()
    assert not (run_dir / "checkpoints").exists()


def test_missing_dataset_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.jsonl"
    _one_line_error(run_cli(["dataset=jsonl", f"dataset.path={missing}", f"hydra.run.dir={tmp_path / 'run'}"]), str(missing))


def test_malformed_dataset_line_names_path_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1=", "answer": "2"}\n{"question": "2+2=", "answer": \n')
    _one_line_error(run_cli(["dataset=jsonl", f"dataset.path={bad}", f"hydra.run.dir={tmp_path / 'run'}"]), f"{bad}:2")


def test_missing_field_names_line_and_fields(tmp_path):
    bad = tmp_path / "fields.jsonl"
    bad.write_text('{"question": "1+1=", "answer": "2"}\n{"q": "2+2=", "answer": "4"}\n')
    _one_line_error(run_cli(["dataset=jsonl", f"dataset.path={bad}", f"hydra.run.dir={tmp_path / 'run'}"]), f"{bad}:2", "question")


def test_missing_required_value_is_named():
    _one_line_error(run_cli(["dataset=jsonl"]), "dataset.path is required")

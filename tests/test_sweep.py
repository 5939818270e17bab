"""Sweep folders: unique names, per-trial status, the cross-trial summary, ignored-key warnings, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers.compose import compose
from tinkerx.runs.sweep_checks import ignored_overrides, override_keys, warn_ignored_keys
from tinkerx.runs.sweep_summary import (
    SWEEP_CSV, SWEEP_MD, record_failure, summary_table, sweep_rows, varying_overrides, write_summary,
)


def _hydra_cfg(overrides=()):
    import tinkerx.__main__  # noqa: F401 - registers ${unique:}

    return compose(overrides, return_hydra_config=True)


def test_folders_differ_between_runs_but_not_within_one():
    first, second = _hydra_cfg(), _hydra_cfg()
    a, b = str(first.hydra.sweep.dir), str(second.hydra.sweep.dir)
    assert a.startswith("multirun/") and a.split("_")[-2] == "sft"  # resolvable with no HydraConfig set
    assert a != b  # same second, same config: still two folders
    assert str(first.hydra.sweep.dir) == a  # stable within one run
    trial = _hydra_cfg(["optim.lr=0.1"])
    OmegaConf.copy_cache(from_config=first, to_config=trial)  # what Hydra does for each trial of a sweep
    assert str(trial.hydra.sweep.dir) == a


def test_reproductions_never_share_a_folder(tmp_path):
    from tinkerx.reproduce import sibling_dir

    run = tmp_path / "run"
    assert sibling_dir(run) != sibling_dir(run)
    assert sibling_dir(run).parent == tmp_path and sibling_dir(run).name.startswith("run-reproduced-")


def _trial(sweep: Path, num: int, overrides: list[str], summary: dict | None = None, failed: str | None = None) -> Path:
    trial = sweep / str(num)
    (trial / ".hydra").mkdir(parents=True)
    (trial / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    if summary is not None:
        (trial / "summary.json").write_text(json.dumps(summary))
        (trial / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "train/loss": 1.0 / s}) + "\n" for s in (1, 2)))
    if failed is not None:
        record_failure(trial, failed)
    return trial


@pytest.fixture
def sweep(tmp_path) -> Path:
    sweep = tmp_path / "sweep"
    _trial(sweep, 0, ["optim.lr=0.001", "training.max_steps=2"],
           {"baseline": {"accuracy": 0.1}, "final": {"accuracy": 0.4, "reward_mean": 0.5}, "wall_time_s": 3.0, "steps": 2})
    _trial(sweep, 1, ["optim.lr=0", "training.max_steps=2"], failed="optim.lr must be > 0, got 0")
    _trial(sweep, 10, ["optim.lr=0.003", "training.max_steps=2"],
           {"baseline": {"accuracy": 0.1}, "final": {"accuracy": 0.6, "reward_mean": 0.7}, "wall_time_s": 4.0, "steps": 2})
    _trial(sweep, 2, ["optim.lr=0.01", "training.max_steps=2"])  # killed: neither summary nor failure
    (sweep / "multirun.yaml").write_text("{}\n")
    return sweep


def test_summary_has_one_row_per_trial_with_status_and_metrics(sweep):
    rows = sweep_rows(sweep)
    assert [r["trial"] for r in rows] == ["0", "1", "2", "10"]
    assert [r["status"] for r in rows] == ["completed", "failed", "unfinished", "completed"]
    assert rows[1]["reason"] == "optim.lr must be > 0, got 0"
    assert rows[3]["final/accuracy"] == 0.6 and rows[3]["baseline/accuracy"] == 0.1 and rows[3]["wall_time_s"] == 4.0
    assert Path(rows[0]["run_dir"]) == (sweep / "0").resolve()

    csv_path, md_path = write_summary(sweep, rows)
    assert csv_path.name == SWEEP_CSV and md_path.name == SWEEP_MD
    table = list(csv.DictReader(csv_path.open()))
    assert len(table) == 4 and table[3]["final/accuracy"] == "0.6" and table[1]["status"] == "failed"
    assert list(table[0])[:4] == ["trial", "overrides", "status", "reason"]
    md = md_path.read_text().splitlines()
    assert len([line for line in md if line.startswith("| ")]) == 5  # header + 4 trials
    assert "optim.lr must be > 0, got 0" in md_path.read_text()


def test_terminal_table_shows_only_what_differs(sweep):
    rows = sweep_rows(sweep)
    assert varying_overrides(rows) == ["optim.lr=0.001", "optim.lr=0", "optim.lr=0.01", "optim.lr=0.003"]
    import io

    from rich.console import Console

    console = Console(width=100, record=True, file=io.StringIO())
    console.print(summary_table(rows, "sweep"))
    text = console.export_text()
    assert "training.max_steps" not in text and "0.6" in text and "failed" in text


def test_sft_declares_the_sampling_keys_it_ignores(capsys):
    cfg = compose(["method=sft"])
    assert "sampling.temperature" in cfg.method_ignores
    assert compose(["method=grpo"]).get("method_ignores") is None  # GRPO samples with them
    keys = override_keys(["sampling.temperature=0.7,1.0", "optim.lr=1e-3,3e-3", "+sampling.top_k=5"])
    assert ignored_overrides(keys, cfg.method_ignores) == ["sampling.temperature", "sampling.top_k"]
    warn_ignored_keys("sft", keys, cfg.method_ignores)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tinkerx: warning: method=sft ignores sampling.temperature, sampling.top_k")


def test_plots_expand_a_sweep_folder_into_its_finished_trials(sweep, tmp_path):
    pytest.importorskip("matplotlib")
    from tinkerx.plots import expand_sweeps, main

    run_dirs, labels = expand_sweeps([sweep])
    assert [d.name for d in run_dirs] == ["0", "10"] and labels == ["optim.lr=0.001", "optim.lr=0.003"]
    out = tmp_path / "sweep.png"
    main([str(sweep), "--keys", "eval/accuracy", "train/loss", "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

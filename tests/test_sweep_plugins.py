"""The optional sweeper and launchers in conf/hydra/, each through a tiny real sweep.

They need extras the project itself does not (``pip install 'tinkerx[optuna,parallel,slurm]'``);
each test skips with the reason when its plugin is not installed.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

TINY = ["training.max_steps=3", "method.evaluate_baseline=false", "evaluator.max_examples=4", "dataset.train_size=64"]
PLUGINS = {
    "optuna": "hydra_plugins.hydra_optuna_sweeper",
    "parallel": "hydra_plugins.hydra_joblib_launcher",
    "slurm": "hydra_plugins.hydra_submitit_launcher",
}


def _installed(extra: str) -> bool:
    try:
        return importlib.util.find_spec(PLUGINS[extra]) is not None
    except ModuleNotFoundError:
        return False


def _needs(extra: str) -> None:
    if not _installed(extra):
        pytest.skip(f"{PLUGINS[extra]} is not installed (pip install 'tinkerx[{extra}]')")


def _summary(sweep_dir: Path) -> list[dict]:
    return list(csv.DictReader((sweep_dir / "sweep_summary.csv").open()))


@pytest.mark.slow
def test_optuna_maximises_final_accuracy(tmp_path):
    _needs("optuna")
    sweep_dir = tmp_path / "optuna"
    result = run_cli(["-m", "hydra/sweeper=optuna_accuracy", "hydra.sweeper.n_trials=2", *TINY, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _summary(sweep_dir)
    assert [r["status"] for r in rows] == ["completed", "completed"]
    from omegaconf import OmegaConf

    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    finals = [json.loads((Path(r["run_dir"]) / "summary.json").read_text())["final"]["accuracy"] for r in rows]
    assert best.best_value == max(finals)  # the objective is the final held-out accuracy, maximised
    assert 1e-4 <= best.best_params["optim.lr"] <= 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("extra,launcher", [("parallel", "parallel"), ("slurm", "submitit_local")])
def test_launchers_run_every_trial_into_one_sweep_folder(tmp_path, extra, launcher):
    _needs(extra)
    result = run_cli(["-m", f"hydra/launcher={launcher}", "optim.lr=1e-3,0", *TINY], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]  # the lr=0 trial failed; the other still ran
    (sweep_dir,) = (tmp_path / "multirun").glob("*/*")
    assert sorted(r["status"] for r in _summary(sweep_dir)) == ["completed", "failed"]


def test_slurm_launcher_config_composes():
    _needs("slurm")
    from tests.conftest import CONF_DIR
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.gpus_per_node == 1


@pytest.mark.parametrize("option,extra", [("hydra/sweeper=optuna_accuracy", "optuna"), ("hydra/launcher=parallel", "parallel")])
def test_missing_plugin_is_one_line_naming_the_extra(option, extra):
    if _installed(extra):
        pytest.skip(f"{PLUGINS[extra]} is installed here")
    result = run_cli(["-m", option, "optim.lr=1e-3,3e-3"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert f"pip install 'tinkerx[{extra}]'" in lines[0]

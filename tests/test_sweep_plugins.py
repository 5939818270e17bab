"""The optional sweeper and launchers in conf/hydra/, each through a tiny real sweep.

They need extras the project itself does not (``pip install 'tinkerx[optuna,parallel,slurm]'``).
Where a plugin is not installed its tests skip with the reason, except under
``TINKERX_REQUIRE_SWEEP_PLUGINS=1`` (set by ``.ci/run``, which installs the extras): there a
missing plugin fails, so CI cannot pass by skipping them. What each test proves:

- optuna: ``hydra/sweeper=optuna_accuracy`` runs its trials through Optuna and reports as best the
  highest final held-out accuracy among them, with ``optim.lr`` drawn from the configured range.
- parallel: ``hydra/launcher=parallel`` (joblib worker processes) runs every trial into one sweep
  folder, records a failing trial as failed and the others as completed, and exits 1.
- slurm: the same through submitit's local executor (``hydra/launcher=submitit_local``: real
  submitit jobs, run as local processes, as a SLURM cluster would run them); and
  ``hydra/launcher=slurm`` composes and builds submitit's SlurmLauncher with our settings. Nothing
  is submitted to a real SLURM cluster here.
- without a plugin: choosing it is a one-line error naming the extra to install (runs only where
  that plugin is absent).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
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
        reason = f"{PLUGINS[extra]} is not installed (pip install 'tinkerx[{extra}]')"
        if os.environ.get("TINKERX_REQUIRE_SWEEP_PLUGINS") == "1":
            pytest.fail(f"{reason}, and TINKERX_REQUIRE_SWEEP_PLUGINS=1 requires it")
        pytest.skip(reason)


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


def test_slurm_launcher_config_composes_and_builds(compose_config):
    _needs("slurm")
    from hydra.utils import instantiate

    import tinkerx.__main__  # noqa: F401 - registers ${unique:}, which the sweep folder (submitit's log folder) uses

    launcher = compose_config(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], return_hydra_config=True).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and (launcher.gpus_per_node, launcher.partition) == (1, "gpu")
    built = instantiate(launcher)  # the plugin accepts every key conf/hydra/launcher/slurm.yaml sets
    assert type(built).__name__ == "SlurmLauncher" and built.params["partition"] == "gpu" and built.params["timeout_min"] == 240


@pytest.mark.parametrize("option,extra", [("hydra/sweeper=optuna_accuracy", "optuna"), ("hydra/launcher=parallel", "parallel")])
def test_missing_plugin_is_one_line_naming_the_extra(option, extra):
    if _installed(extra):
        pytest.skip(f"{PLUGINS[extra]} is installed here")
    result = run_cli(["-m", option, "optim.lr=1e-3,3e-3"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert f"pip install 'tinkerx[{extra}]'" in lines[0]

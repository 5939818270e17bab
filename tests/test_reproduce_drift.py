"""A run folder reproduces what ran even after the config files changed: the values its resolved
config.yaml holds and today's files give differently are set back, and reproduce says which."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from tests.helpers.cli import run_cli

pytestmark = pytest.mark.slow

SHORT = ["training.max_steps=2", "method.evaluate_baseline=false", "evaluator.max_examples=4", "method.validation_every=0"]


@pytest.fixture(scope="module")
def edited_run(tmp_path_factory):
    """A finished run whose config.yaml says it ran with values today's files no longer give, as if
    conf/ had been edited since: the learning rate, the batch size and a key removed since."""
    run_dir = tmp_path_factory.mktemp("drift") / "run"
    result = run_cli([*SHORT, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-2000:]
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert saved.optim.lr != 0.0123 and saved.training.batch_size != 7
    saved.optim.lr, saved.training.batch_size, saved.evaluator.temperature = 0.0123, 7, 0.5
    saved.training.removed_since = 1
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    return run_dir


def test_values_the_files_no_longer_give_are_set_back(edited_run, tmp_path):
    out = tmp_path / "again"
    result = run_cli([str(edited_run), f"hydra.run.dir={out}"], module="tinkerx.reproduce", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "setting back what it ran with: optim.lr=0.0123 training.batch_size=7 evaluator.temperature=0.5" in result.stdout
    assert "not set back (removed, or not a single value): training.removed_since" in result.stdout
    ran = OmegaConf.load(out / "config.yaml")
    assert ran.optim.lr == 0.0123 and ran.training.batch_size == 7 and ran.evaluator.temperature == 0.5
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_the_reproduction_s_own_changes_win(edited_run, tmp_path):
    out = tmp_path / "changed"
    result = run_cli([str(edited_run), "evaluator=default", "optim.lr=0.002", "training.max_steps=1", f"hydra.run.dir={out}"],
                     module="tinkerx.reproduce", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    ran = OmegaConf.load(out / "config.yaml")
    # optim.lr is this command's; evaluator=default chooses the whole node, so nothing under it is set back.
    assert ran.optim.lr == 0.002 and ran.training.batch_size == 7 and ran.training.max_steps == 1
    assert ran.evaluator.temperature == 0.0
    assert "optim.lr=0.0123" not in result.stdout

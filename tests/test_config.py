"""Every combination of config groups, and every experiment, composes and builds its settings."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers.paths import CONF_DIR
from tinkerx.paths import EXPERIMENT_DIR

GROUPS = ("method", "model", "dataset", "backend", "logger", "reward", "evaluator")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


EXPERIMENTS = sorted(p.stem for p in EXPERIMENT_DIR.glob("*.yaml"))


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), group


# Every method x model x data set x backend combination is composed, with its invariants checked,
# in test_config_matrix.py. The remaining groups (logger, reward, evaluator) write only their own
# node, so each option is composed once here.
AXES = ("model", "dataset", "backend")


def _check(cfg, overrides):
    assert cfg.method._target_.startswith("tinkerx.methods."), overrides
    for key in ("seed", "optim", "sampling", "training", "model", "dataset", "backend"):
        assert key in cfg, (key, overrides)


@pytest.mark.parametrize("group", [g for g in GROUPS if g not in AXES and g != "method"])
def test_every_option_of_the_other_groups_composes(compose_config, group):
    for option in options(group):
        _check(compose_config([f"{group}={option}"]), [f"{group}={option}"])


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_its_settings_validate(compose_config, experiment):
    cfg = compose_config([f"experiment={experiment}"])
    if cfg.method.get("init_from"):
        # Warm starts name a run folder made by an earlier command; its existence is checked at start-up.
        cfg.method.init_from = None
    for key in ("optim", "sampling", "training", "method"):
        instantiate(cfg[key])  # raises ConfigError on any invalid value
    assert OmegaConf.select(cfg, "model.base_model")


def test_experiment_overrides_groups(compose_config):
    cfg = compose_config(["experiment=sft_smollm2_gsm8k"])
    assert cfg.model.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert cfg.dataset._target_.endswith("GSM8K")


def test_every_option_file_maps_to_one_class(compose_config):
    for group in ("model", "backend", "reward", "dataset", "evaluator"):
        for option in options(group):
            node = compose_config([f"{group}={option}"])[group]
            target = node.get("_target_") or OmegaConf.select(node, "loader._target_")
            assert target and target.startswith("tinkerx."), f"{group}/{option}"


def test_default_settings_validate(compose_config):
    cfg = compose_config([])
    optim, sampling, training = instantiate(cfg.optim), instantiate(cfg.sampling), instantiate(cfg.training)
    assert optim.lr > 0 and sampling.max_tokens >= 1 and training.batch_size >= 1
    assert cfg.backend._target_ == "tinkerx.backends.local.LocalBackend"
    assert cfg.model.base_model == "tinkerx/tiny"

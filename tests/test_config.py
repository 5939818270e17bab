"""Every combination of config groups, and every experiment, composes and builds its settings."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, ROOT

GROUPS = ("method", "model", "dataset", "backend", "logger", "reward", "evaluator")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), group


# Every method x model x data set x backend combination is composed, with its invariants checked,
# in test_config_matrix.py. The remaining groups (logger, reward, evaluator) write only their own
# node, so each option is composed once here.
AXES = ("model", "dataset", "backend")


@pytest.fixture(scope="module")
def composer():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda overrides: hydra_compose(config_name="config", overrides=overrides)
    GlobalHydra.instance().clear()


def _check(cfg, overrides):
    assert cfg.method._target_.startswith("tinkerx.methods."), overrides
    for key in ("seed", "optim", "sampling", "training", "model", "dataset", "backend"):
        assert key in cfg, (key, overrides)


@pytest.mark.parametrize("group", [g for g in GROUPS if g not in AXES and g != "method"])
def test_every_option_of_the_other_groups_composes(composer, group):
    for option in options(group):
        _check(composer([f"{group}={option}"]), [f"{group}={option}"])


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_its_settings_validate(composer, experiment):
    cfg = composer([f"experiment={experiment}"])
    if cfg.method.get("init_from"):
        # Warm starts name a run folder made by an earlier command; its existence is checked at start-up.
        cfg.method.init_from = None
    for key in ("optim", "sampling", "training", "method"):
        instantiate(cfg[key])  # raises ConfigError on any invalid value
    assert OmegaConf.select(cfg, "model.base_model")


def test_experiment_overrides_groups(composer):
    cfg = composer(["experiment=sft_smollm2_gsm8k"])
    assert cfg.model.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert cfg.dataset._target_.endswith("GSM8K")


def test_every_option_file_maps_to_one_class(composer):
    for group in ("model", "backend", "reward", "dataset", "evaluator"):
        for option in options(group):
            node = composer([f"{group}={option}"])[group]
            target = node.get("_target_") or OmegaConf.select(node, "loader._target_")
            assert target and target.startswith("tinkerx."), f"{group}/{option}"


def test_default_settings_validate(composer):
    cfg = composer([])
    optim, sampling, training = instantiate(cfg.optim), instantiate(cfg.sampling), instantiate(cfg.training)
    assert optim.lr > 0 and sampling.max_tokens >= 1 and training.batch_size >= 1
    assert cfg.backend._target_ == "tinkerx.backends.local.LocalBackend"
    assert cfg.model.base_model == "tinkerx/tiny"

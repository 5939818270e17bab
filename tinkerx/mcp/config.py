"""Config for the MCP server's runs, composed from the same Hydra groups (conf/) as the CLI's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from tinkerx.errors import ConfigError
from tinkerx.paths import CONFIG_DIR
from tinkerx.runs.compose import compose_config


def compose(overrides: list[str], values: dict[str, Any] | None = None) -> DictConfig:
    """The CLI's config for ``overrides`` (group choices and ``key=value``s), then ``values`` set by key."""
    return compose_run(overrides, values)[0]


def compose_run(overrides: list[str], values: dict[str, Any] | None = None) -> tuple[DictConfig, str]:
    """``compose``, and the method group's choice (``sft``, ``dpo``, ... also when an experiment picks it).

    Values from tool arguments are set on the composed config rather than written as override
    strings, so a path with ``:`` or quotes in it needs no escaping and keeps its type.
    """
    cfg = compose_config(list(overrides), return_hydra_config=True)
    method = str(cfg.hydra.runtime.choices.get("method"))
    with open_dict(cfg):
        del cfg["hydra"]  # Hydra's own settings: the CLI's run config.yaml does not hold them either
        for key, value in (values or {}).items():
            if value is not None:
                OmegaConf.update(cfg, key, value, force_add=True)
    return cfg, method


def reward_choice(reward: str) -> tuple[list[str], dict[str, Any]]:
    """``reward`` as config: a built-in name (conf/reward/NAME.yaml) or a Python file's path."""
    builtin = sorted(p.stem for p in (CONFIG_DIR / "reward").glob("*.yaml") if p.stem != "python")
    if reward in builtin:
        return [f"reward={reward}"], {}
    if reward.endswith(".py"):
        return ["reward=python"], {"reward.path": str(Path(reward).expanduser().resolve())}
    raise ConfigError(f"unknown reward {reward!r}; valid: {', '.join(builtin)}, or the path of a .py file defining compute_reward(completion, ground_truth)")

"""Composing the project's config outside the CLI (grade, judges, tag, harness, MCP), with Hydra's
composition errors turned into the CLI's one-line ``ConfigError``s."""

from __future__ import annotations

from typing import Any

from tinkerx.cli_errors import describe_composition_error
from tinkerx.errors import ConfigError
from tinkerx.paths import CONFIG_DIR


def compose_config(overrides: list[str], return_hydra_config: bool = False) -> Any:
    # Deferred: Hydra loads only when a config is composed, not when a command starts.
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config)
    except Exception as error:
        message = describe_composition_error(error)
        if message is None:
            raise
        raise ConfigError(message) from None
    finally:
        GlobalHydra.instance().clear()

"""The project config composed as the CLI composes it, without running anything."""

from __future__ import annotations

from tests.helpers.paths import CONF_DIR


def compose(overrides: list[str] | None = None, *, config_name: str = "config", return_hydra_config: bool = False):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides or []), return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()

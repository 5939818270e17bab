"""``python -m tinkerx.serve model=tiny server.port=8000``

Serves one model (the ``model`` group) through one backend (the ``backend`` group, ``local`` by
default) on loopback. Checkpoints and their ``tinker://`` index live in the Hydra run folder, or in
``server.state_dir`` to keep them across restarts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from tinkerx.cli_errors import install_compact_errors, report_user_error
from tinkerx.errors import UserError
from tinkerx.paths import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="serve")
def _entry(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    try:
        serve(cfg, Path(HydraConfig.get().runtime.output_dir))
    except UserError as e:
        report_user_error(e)


def serve(cfg: DictConfig, run_dir: Path) -> None:
    from tinkerx.build import instantiate
    from tinkerx.serve.context import Faults, ServerConfig
    from tinkerx.serve.runner import make_app, serve_forever
    from tinkerx.serve.security import api_keys_for

    server = OmegaConf.to_container(cfg.server, resolve=True)
    host, port, state_dir = server.pop("host"), server.pop("port"), server.pop("state_dir")
    state_dir = Path(state_dir) if state_dir else run_dir / "state"
    server["api_keys"] = api_keys_for(host, server.get("api_keys") or [])  # refuses before anything loads
    config = ServerConfig(**{**server, "faults": Faults(**server["faults"])})
    loader = instantiate(cfg.model.loader, "model.loader")
    backend = instantiate(cfg.backend, "backend")
    service = backend.open([loader], state_dir, seed=cfg.seed)
    app, ctx = make_app(service, cfg.model.base_model, state_dir, config)
    keys = f", {len(config.api_keys)} API key(s)" if config.api_keys else ", no API key (loopback only)"
    print(f"tinkerx serve: {cfg.model.base_model} on http://{host}:{port} (state in {state_dir}{keys})", flush=True)
    try:
        serve_forever(app, host, port)
    finally:
        ctx.close()
        backend.close()


def main() -> None:
    install_compact_errors()
    _entry()


if __name__ == "__main__":
    sys.exit(main())

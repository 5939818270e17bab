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


@hydra.main(version_base="1.3", config_path="../../conf", config_name="serve")
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

    server = cfg.server
    state_dir = Path(server.state_dir) if server.state_dir else run_dir / "state"
    config = ServerConfig(
        latency_s=server.latency_s,
        poll_hold_s=server.poll_hold_s,
        compress_fwdbwd=server.compress_fwdbwd,
        faults=Faults(**OmegaConf.to_container(server.faults, resolve=True)),
        checkpoint=server.checkpoint,
    )
    loader = instantiate(cfg.model.loader, "model.loader")
    backend = instantiate(cfg.backend, "backend")
    service = backend.open([loader], state_dir, seed=cfg.seed)
    app, ctx = make_app(service, cfg.model.base_model, state_dir, config)
    print(f"tinkerx serve: {cfg.model.base_model} on http://{server.host}:{server.port} (state in {state_dir})", flush=True)
    try:
        serve_forever(app, server.host, server.port)
    finally:
        ctx.close()
        backend.close()


def main() -> None:
    install_compact_errors()
    _entry()


if __name__ == "__main__":
    sys.exit(main())

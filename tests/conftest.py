"""Shared fixtures: config composition, a tiny-model service, the CLI in a subprocess, shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config) -> None:
    # Tests run in parallel processes (pytest-xdist, ``-n`` in pyproject's addopts): one torch
    # thread each, inherited by the CLI subprocesses they start. More threads than free cores make
    # OpenMP workers wait on each other (a SmolLM2 forward ran 2-4x slower that way).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not found at {SHARED_DATA}: the real-data checks need it beside the project")
    return SHARED_DATA


def compose(overrides: list[str] | None = None):
    """Compose the project config as the CLI would, without running anything."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=overrides or [], return_hydra_config=False)
    finally:
        GlobalHydra.instance().clear()


def run_cli(args: list[str], module: str = "tinkerx", timeout: float = 600, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "TINKER_TELEMETRY": "0", "HF_HUB_OFFLINE": "1",
           # From any cwd, this checkout's tinkerx, not another installed copy.
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(scope="session")
def tiny_service(tmp_path_factory):
    """A local service with the tiny model; tests create their own clients from it."""
    from tinkerx.backends.local import LocalBackend
    from tinkerx.models.tiny import TinyModel

    backend = LocalBackend(device="cpu")
    service = backend.open([TinyModel()], tmp_path_factory.mktemp("tiny_service"), seed=0)
    yield service
    backend.close()

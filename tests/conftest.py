"""Shared fixtures: config composition, a tiny-model service, the CLI in a subprocess, shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Test files import these from tests.helpers; re-exported here for tests written before it existed.
from tests.helpers.cli import run_cli  # noqa: F401
from tests.helpers.compose import compose
from tests.helpers.paths import CONF_DIR, ROOT, SHARED_DATA  # noqa: F401


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


@pytest.fixture
def compose_config():
    """Compose the project config as the CLI would: ``compose_config(["method=grpo"])``, with
    ``return_hydra_config=True`` for the hydra.* keys. Composition is built in tests/helpers/compose.py only."""
    return compose


@pytest.fixture(scope="module")
def tinker_server(tmp_path_factory):
    """A local Tinker-compatible server (``python -m tinkerx.serve``) for the module's tests; its URL."""
    from tests.helpers.tinker_server import start_server

    process, url = start_server(tmp_path_factory.mktemp("serve"))
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def tiny_service(tmp_path_factory):
    """A local service with the tiny model; tests create their own clients from it."""
    from tinkerx.backends.local import LocalBackend
    from tinkerx.models.tiny import TinyModel

    backend = LocalBackend(device="cpu")
    service = backend.open([TinyModel()], tmp_path_factory.mktemp("tiny_service"), seed=0)
    yield service
    backend.close()

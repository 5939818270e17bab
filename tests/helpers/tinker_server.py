"""A local Tinker-compatible server (``python -m tinkerx.serve``) and CLI runs against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers.cli import run_cli
from tests.helpers.paths import ROOT
from tinkerx.serve.runner import free_port

KEY = "tml-cli-secret-abcdef0123456789"


def start_server(state: Path, *overrides: str):
    port = free_port()
    log = (state / "serve.log").open("w")
    env = {**os.environ, "TINKER_TELEMETRY": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tinkerx.serve", f"server.port={port}", "server.poll_hold_s=5", f"hydra.run.dir={state}", *overrides],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(f"{url}/api/v1/healthz", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tinkerx.serve did not start: {(state / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.3)
    return process, url


def run_with_key(args: list[str], run_dir: Path, key: str | None = KEY) -> subprocess.CompletedProcess:
    env_key = {"TINKER_API_KEY": key} if key else {}
    saved = {k: os.environ.get(k) for k in env_key}
    os.environ.update(env_key)
    try:
        result = run_cli([*args, f"hydra.run.dir={run_dir}"])
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def tinker_cli(args: list[str], run_dir: Path, server: str) -> dict:
    """A run against ``server`` with ``backend=tinker``; returns its summary."""
    run_with_key([*args, "backend=tinker", f"backend.base_url={server}"], run_dir, key=KEY)
    return json.loads((run_dir / "summary.json").read_text())

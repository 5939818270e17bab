"""The tinkerx command line in a subprocess, as a user would run it from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import ROOT


def run_cli(args: list[str], module: str = "tinkerx", timeout: float = 600, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "TINKER_TELEMETRY": "0", "HF_HUB_OFFLINE": "1",
           # From any cwd, this checkout's tinkerx, not another installed copy.
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)

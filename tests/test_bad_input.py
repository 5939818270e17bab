"""Every user mistake through the real CLI: exit != 0, one stderr line ``tinkerx: error: ...``, no traceback.

All cases start at once from a temporary working directory and fail before any model work, so
the whole matrix costs about as long as its slowest case.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = ["model=tiny", "training.max_steps=2", "method.evaluate_baseline=false"]


def _closed_port_url() -> str:
    with socket.socket() as s:  # free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _cases(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (command after ``python -m``, fragments the error line must contain)."""
    (tmp / "a_file").write_text("not a folder\n")
    (tmp / "hangs_at_import.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    (tmp / "hangs_per_call.py").write_text("import time\n\ndef compute_reward(completion, ground_truth):\n    time.sleep(3600)\n")
    stale = tmp / "stale_run" / ".hydra"
    stale.mkdir(parents=True)
    (stale / "hydra.yaml").write_text(
        "hydra:\n  output_subdir: .hydra\n  overrides:\n    task: [optim.learning_rate=0.1]\n    hydra: []\n"
        "  runtime:\n    choices: {method: sft, model: tiny}\n"
    )
    url = _closed_port_url()
    cases = {
        "unwritable output folder": (["tinkerx", *BASE, f"hydra.run.dir={tmp / 'a_file' / 'run'}"], ["cannot create the output folder", "hydra.run.dir"]),
        "max_steps not an integer": (["tinkerx", "training.max_steps=2.5"], ["training.max_steps must be an integer, got 2.5"]),
        "seed not an integer": (["tinkerx", *BASE, "seed=abc"], ["seed must be an integer, got 'abc'"]),
        "typo in a key": (["tinkerx", "optim.lrr=1e-3"], ["unknown config key 'optim.lrr'", "valid keys under optim: lr,"]),
        "misspelt experiment": (["tinkerx", "experiment=tiny_grpoo"], ["unknown experiment 'tiny_grpoo'", "valid: tiny_grpo,"]),
        "config no longer composes": (["tinkerx.reproduce", str(tmp / "stale_run")], ["cannot reproduce", "no longer composes", "optim.learning_rate"]),
        "unreachable tinker server": (["tinkerx", *BASE, "backend=tinker", f"backend.base_url={url}", "backend.connect_timeout_s=5"], ["cannot reach the Tinker server", url]),
        "reward hangs at import": (["tinkerx", *BASE, "reward=python", "reward.path=hangs_at_import.py", "reward.import_timeout_s=1"], ["hangs_at_import.py", "did not finish within 1s"]),
        "reward hangs per call": (["tinkerx", *BASE, "reward=python", "reward.path=hangs_per_call.py", "reward_timeout_s=1"], ["python:hangs_per_call.py", "timed out after 1s"]),
    }
    import torch

    if not torch.cuda.is_available():
        cases["cuda on a CPU-only torch"] = (["tinkerx", *BASE, "backend.device=cuda"], ["backend.device=cuda", "backend.device=cpu"])
    return cases


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_input")
    env = {**os.environ, "TINKER_API_KEY": "tml-test", "TINKER_TELEMETRY": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cases = _cases(tmp)

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=120, cwd=tmp, env=env)

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        done = dict(zip(cases, pool.map(run, [args for args, _ in cases.values()])))
    return {name: (done[name], fragments) for name, (_, fragments) in cases.items()}


CASES = ["unwritable output folder", "max_steps not an integer", "seed not an integer", "typo in a key", "misspelt experiment",
         "config no longer composes", "unreachable tinker server", "reward hangs at import", "reward hangs per call",
         "cuda on a CPU-only torch"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line(results, case):
    if case not in results:
        pytest.skip("this machine has CUDA: the CPU-only case cannot happen here")
    result, fragments = results[case]
    assert result.returncode != 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinkerx: error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])

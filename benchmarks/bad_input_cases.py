"""Every user mistake the CLI must end with one line, and the fragments that line must contain.

Shared by tests/test_bad_input.py (each ends in one line, no traceback) and
benchmarks/bench_fail_fast.py (how soon): the cases live here so that neither imports the other.
"""

from __future__ import annotations

import socket
from pathlib import Path

BASE = ["model=tiny", "training.max_steps=2", "method.evaluate_baseline=false"]


def _closed_port_url() -> str:
    with socket.socket() as s:  # free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def cases(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
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
        "config group set to null": (["tinkerx", "logger=null"], ["a config group was set to null", "logger=none"]),
        "misspelt experiment": (["tinkerx", "experiment=grpo_tiny_arithmeticc"], ["unknown experiment 'grpo_tiny_arithmeticc'", "valid: grpo_tiny_arithmetic,"]),
        "config no longer composes": (["tinkerx.reproduce", str(tmp / "stale_run")], ["cannot reproduce", "no longer composes", "optim.learning_rate"]),
        "unreachable tinker server": (["tinkerx", *BASE, "backend=tinker", f"backend.base_url={url}", "backend.connect_timeout_s=5"], ["cannot reach the Tinker server", url]),
        "reward hangs at import": (["tinkerx", *BASE, "reward=python", "reward.path=hangs_at_import.py", "reward.import_timeout_s=1"], ["hangs_at_import.py", "did not finish within 1s"]),
        "reward hangs per call": (["tinkerx", *BASE, "reward=python", "reward.path=hangs_per_call.py", "reward_timeout_s=1"], ["python:hangs_per_call.py", "timed out after 1s"]),
    }
    import torch

    if not torch.cuda.is_available():
        cases["cuda on a CPU-only torch"] = (["tinkerx", *BASE, "backend.device=cuda"], ["backend.device=cuda", "backend.device=cpu"])
    return cases

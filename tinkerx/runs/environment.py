"""What a run ran with, beyond its config: package versions, the git commit, the machine."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# The checkout tinkerx runs from, whose git state environment.json records (no git facts in a wheel).
SOURCE_DIR = Path(__file__).resolve().parents[2]

PACKAGES = (
    "tinkerx", "torch", "transformers", "tokenizers", "peft", "datasets", "tinker",
    "hydra-core", "omegaconf", "math-verify", "wandb", "vcrpy", "rich", "numpy",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(source_dir: Path) -> dict[str, Any]:
    """The commit and whether tracked files differ from it, as ``git`` itself sees them.

    ``dirty`` counts tracked changes only: run folders, caches and other untracked files in the
    checkout do not change the code that ran (they are counted apart, in ``untracked``). ``diff_sha256``
    tells two dirty states apart. All values are None where ``source_dir`` is not a git checkout
    (an installed wheel) or git is missing.
    """
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=source_dir, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None, "changed_files": None, "untracked": None, "diff_sha256": None}
    changed = [line[3:] for line in (git("status", "--porcelain", "--untracked-files=no") or "").splitlines() if line.strip()]
    untracked = (git("ls-files", "--others", "--exclude-standard") or "").splitlines()
    diff = git("diff", "HEAD") or ""
    return {
        "commit": commit.strip(),
        "branch": (git("rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None,
        "dirty": bool(changed),
        "changed_files": changed,
        "untracked": len(untracked),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if changed else None,
    }


def torch_threads() -> int:
    """CPU float sums differ with the thread count, so line-for-line reproduction needs the same one."""
    import torch  # deferred: torch stays off the CLI's start-up path (--cfg job, errors)

    return torch.get_num_threads()


def cpu() -> dict[str, str | None]:
    """The CPU and the kernels torch picked for it (AVX2, AVX512, ...): two machines whose kernels
    differ round float sums differently, so their runs agree line for line only when these match."""
    import torch  # deferred: torch stays off the CLI's start-up path (--cfg job, errors)

    return {"model": _cpu_model(), "capability": torch.backends.cpu.get_cpu_capability()}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(source_dir: Path) -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "argv": sys.argv,
        "packages": package_versions(),
        "git": git_state(source_dir),
        "torch_threads": torch_threads(),
        "cpu": cpu(),
    }


def match_thread_count(run_dir: Path) -> int | None:
    """Use the original run's torch thread count (CPU sums depend on it); the count set, or None."""
    try:
        wanted = json.loads((run_dir / "environment.json").read_text()).get("torch_threads")
    except (OSError, ValueError):
        return None
    if not isinstance(wanted, int) or wanted < 1:
        return None
    import torch  # deferred: torch stays off the CLI's start-up path (--cfg job, errors)

    if torch.get_num_threads() != wanted:
        print(f"using {wanted} torch threads, as the original run did (this machine defaulted to {torch.get_num_threads()})")
        torch.set_num_threads(wanted)
    return wanted


def cpu_difference(run_dir: Path) -> str | None:
    """Why a re-run on this machine need not match ``run_dir`` line for line because of the CPU, or None
    where the original recorded the same CPU and kernels as this machine has."""
    try:
        recorded = json.loads((run_dir / "environment.json").read_text()).get("cpu")
    except (OSError, ValueError):
        return None
    here = cpu()
    if not isinstance(recorded, dict) or not recorded.get("capability"):
        return f"the original run did not record its CPU (this machine: {_describe(here)})"
    # The math libraries pick their kernels by CPU as well as by instruction set: either may differ.
    if (recorded.get("capability"), recorded.get("model")) != (here["capability"], here["model"]):
        return f"the original ran on {_describe(recorded)}, this machine is {_describe(here)}"
    return None


def _describe(record: dict) -> str:
    return f"{record.get('model') or 'an unknown CPU'} with {record.get('capability')} kernels"

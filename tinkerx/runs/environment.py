"""What a run ran with, beyond its config: package versions, the git commit, the machine."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

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


def git_state(source_dir: Path) -> dict[str, str | bool | None]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=source_dir, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment(source_dir: Path) -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "argv": sys.argv,
        "packages": package_versions(),
        "git": git_state(source_dir),
    }

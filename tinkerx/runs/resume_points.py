"""Resume points: everything needed to continue a run exactly, written so a kill can never corrupt one.

A resume point is the backend's checkpoint of every trained policy (weights and optimizer; a local
folder or a ``tinker://`` path) plus, in ``<run>/resume/step_NNNNNN/``, the method's own state, the
random-number generators and a manifest listing every file with its sha256. The folder is written
under a temporary name and renamed into place, so a reader sees a whole point or none; the manifest
catches anything damaged after the fact, and ``latest`` then falls back to the previous point.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tinkerx.errors import UserError
from tinkerx.runs.faults import kill_point

FORMAT = 1  # bump when a resume point's contents change meaning
RESUME_DIR = "resume"
_STATE, _RNG, _MANIFEST = "method_state.json", "rng.json", "manifest.json"


@dataclass
class ResumePoint:
    step: int
    folder: Path
    checkpoints: dict[str, str]
    method_state: dict[str, Any]
    rng: dict[str, Any]
    usage_unread: dict[str, Any] | None = None  # tokens spent before the point that no metrics line reports


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _local_files(checkpoints: dict[str, str]) -> list[Path]:
    """Files of local backend checkpoints (service paths such as tinker://... are the service's to keep)."""
    files: list[Path] = []
    for path in checkpoints.values():
        if "://" not in path and Path(path).is_dir():
            files += sorted(p for p in Path(path).rglob("*") if p.is_file())
    return files


def write_point(run_dir: Path, step: int, checkpoints: dict[str, str], method_state: dict[str, Any], rng: dict[str, Any],
                usage_unread: dict[str, Any] | None = None) -> Path:  # fmt: skip
    root = Path(run_dir) / RESUME_DIR
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp-step_{step:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / _STATE).write_text(json.dumps(method_state))
    (tmp / _RNG).write_text(json.dumps(rng))
    files = {name: _sha256(tmp / name) for name in (_STATE, _RNG)}
    manifest = {
        "format": FORMAT,
        "step": step,
        "checkpoints": checkpoints,
        "files": files,
        "checkpoint_files": {str(p): _sha256(p) for p in _local_files(checkpoints)},
    }
    if usage_unread:
        manifest["usage_unread"] = usage_unread
    (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2))
    _fsync_tree(tmp)
    kill_point("checkpoint", step)
    if final.exists():  # the same step saved again (a resumed run re-reaching it): replace whole
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with path.open("rb") as f:
            os.fsync(f.fileno())


def points(run_dir: Path) -> list[Path]:
    """Resume point folders, newest first (half-written temporaries are not points)."""
    root = Path(run_dir) / RESUME_DIR
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_")), reverse=True)


def read_point(folder: Path) -> ResumePoint:
    """A verified resume point; raises ``ValueError`` saying what is wrong with it."""
    manifest_file = folder / _MANIFEST
    if not manifest_file.is_file():
        raise ValueError("no manifest.json")
    manifest = json.loads(manifest_file.read_text())
    if manifest.get("format") != FORMAT:
        raise IncompatiblePoint(f"resume point format {manifest.get('format')!r}; this tinkerx reads format {FORMAT}")
    for name, digest in {**manifest["files"]}.items():
        if not (folder / name).is_file() or _sha256(folder / name) != digest:
            raise ValueError(f"{name} is missing or does not match its manifest hash")
    for name, digest in manifest["checkpoint_files"].items():
        if not Path(name).is_file() or _sha256(Path(name)) != digest:
            raise ValueError(f"checkpoint file {name} is missing or does not match its manifest hash")
    return ResumePoint(
        step=int(manifest["step"]),
        folder=folder,
        checkpoints=dict(manifest["checkpoints"]),
        method_state=json.loads((folder / _STATE).read_text()),
        rng=json.loads((folder / _RNG).read_text()),
        usage_unread=manifest.get("usage_unread"),  # absent from points written before it was kept: none
    )


class IncompatiblePoint(ValueError):
    pass


def latest_point(run_dir: Path, warn: Callable[[str], None]) -> ResumePoint:
    """The newest intact resume point; damaged ones are skipped with a warning."""
    found = points(run_dir)
    if not found:
        raise UserError(f"{run_dir} has no resume points (resume/step_*): it stopped before its first checkpoint; start it again")
    for folder in found:
        try:
            return read_point(folder)
        except IncompatiblePoint as e:
            raise UserError(f"{folder}: {e}; resume it with the tinkerx version that wrote it") from None
        except (ValueError, OSError, json.JSONDecodeError) as e:
            warn(f"resume point {folder.name} is damaged ({e}); using the one before it")
    raise UserError(f"{run_dir}: every resume point is damaged; nothing to resume from")


def prune(run_dir: Path, keep: int | None) -> None:
    """Keep the newest ``keep`` resume points and delete the rest with their local checkpoints.

    Only step checkpoints named in resume points go: the final one and auto-saved best ones never do.
    """
    if keep is None:
        return
    for folder in points(run_dir)[keep:]:
        try:
            checkpoints = json.loads((folder / _MANIFEST).read_text())["checkpoints"]
        except (OSError, ValueError, KeyError):
            checkpoints = {}
        shutil.rmtree(folder, ignore_errors=True)
        for path in checkpoints.values():
            if "://" not in path:
                shutil.rmtree(path, ignore_errors=True)

"""Finding a checkpoint from what a user types: a checkpoint folder, a run folder, or a service path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinkerx.errors import ConfigError


def resolve_checkpoint(path: str, key: str) -> str:
    """``path`` itself, or the final checkpoint named in a run folder's ``summary.json``.

    Service paths (``tinker://...``) pass through unchecked; a local path must exist. ``key``
    names the config key in error messages.
    """
    if "://" in path:
        return path
    local = Path(path).expanduser()
    summary = local / "summary.json"
    if summary.is_file():
        checkpoint = json.loads(summary.read_text()).get("checkpoint")
        if not checkpoint:
            raise ConfigError(f"{key}: run folder {path} saved no final checkpoint (summary.json has no 'checkpoint')")
        local = Path(checkpoint)
    if not local.exists():
        raise ConfigError(f"{key}: no checkpoint at {local}")
    return str(local)


def load_weights(service: Any, checkpoint: str, key: str) -> Any:
    """A training client with ``checkpoint``'s weights (a fresh optimizer); one ConfigError naming ``key`` if they cannot load.

    The path exists by now (``resolve_checkpoint``), but it may not be a checkpoint at all, or one the
    backend cannot read: the user should see which key to fix, not the backend's traceback.
    """
    try:
        return service.create_training_client_from_state(checkpoint).result()
    except Exception as e:  # noqa: BLE001 - whatever the backend raised, the fix is the same: another checkpoint
        raise ConfigError(f"{key}: cannot load {checkpoint}: {type(e).__name__}: {' '.join(str(e).split())}") from None


def checkpoint_base_model(path: str) -> str | None:
    """The base model a local checkpoint was trained from, when its ``meta.json`` says."""
    meta = Path(path) / "meta.json"
    return json.loads(meta.read_text()).get("base_model") if meta.is_file() else None

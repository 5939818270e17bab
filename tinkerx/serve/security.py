"""Who may call the server, and where its checkpoints may live.

A server on loopback is reachable only from this machine; anywhere else it trains and samples for
whoever can reach the port, so it needs API keys (the SDK sends its key as ``X-API-Key``).
Checkpoint names come from clients and become folder names: they must stay one plain path
component, and every checkpoint loaded must resolve inside the state folder.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from pathlib import Path

from tinkerx.errors import ConfigError

KEYS_ENV = "TINKERX_SERVE_API_KEYS"
# One path component a tinker:// path can carry (it splits on "/"), never hidden, never "..".
_CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_keys_for(host: str, configured: list[str]) -> list[str]:
    """The keys the server checks: ``server.api_keys``, else the environment; required off loopback."""
    keys = [k for k in configured if k] or [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    if not keys and not _is_loopback(host):
        raise ConfigError(
            f"server.host={host} exposes the server beyond this machine: set server.api_keys=[...] "
            f"(or {KEYS_ENV}=key1,key2), or keep server.host=127.0.0.1"
        )
    return keys


def key_is_valid(given: str | None, keys: list[str]) -> bool:
    # Constant-time comparison: the reply time must not tell how much of a key was right.
    return given is not None and any(hmac.compare_digest(given.encode(), k.encode()) for k in keys)


def check_checkpoint_name(name: str) -> str:
    if not isinstance(name, str) or not _CHECKPOINT_NAME.fullmatch(name):
        raise ValueError(
            f"invalid checkpoint name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no '..', no absolute path)"
        )
    return name


def confined(local_path: str, state_dir: Path) -> str:
    """``local_path`` if it resolves (symlinks followed) inside ``state_dir``; else a 400."""
    resolved = Path(local_path).resolve()
    if not resolved.is_relative_to(state_dir.resolve()):
        raise ValueError(f"checkpoint {local_path!r} resolves outside the server's state folder; refusing to load it")
    return str(resolved)

"""Per-area debug logs (``debug/init.log``, ``training.log``, ...) when ``TINKERX_DEBUG=1``.

Areas are ordinary ``logging`` loggers under ``tinkerx.mcp.``; the reward's own warnings
(``tinkerx.rewards``) go to the reward area. Nothing is written to stdout, which carries the
protocol over stdio.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

AREAS = ("init", "training", "sampling", "reward", "checkpoints")
_EXTRA_SOURCES = {"reward": ("tinkerx.rewards",)}


def area(name: str) -> logging.Logger:
    return logging.getLogger(f"tinkerx.mcp.{name}")


def enabled() -> bool:
    return os.environ.get("TINKERX_DEBUG", "") not in ("", "0")


def install(session_dir: Path) -> None:
    """One file per area under ``session_dir/debug``; a no-op unless TINKERX_DEBUG is set."""
    if not enabled():
        return
    folder = Path(session_dir) / "debug"
    folder.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in AREAS:
        handler = logging.FileHandler(folder / f"{name}.log", encoding="utf-8")
        handler.setFormatter(fmt)
        for logger_name in (f"tinkerx.mcp.{name}", *_EXTRA_SOURCES.get(name, ())):
            logger = logging.getLogger(logger_name)
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)

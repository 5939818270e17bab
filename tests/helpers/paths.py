"""Where the checkout under test and the shared data beside it are."""

from __future__ import annotations

from pathlib import Path

from tinkerx.paths import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = CONFIG_DIR
SHARED_DATA = ROOT.parent / "shared" / "data"

"""Where tinkerx's packaged files are: the one place that computes the config folder's path."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENT_DIR = CONFIG_DIR / "experiment"

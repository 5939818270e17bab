"""Where tinkerx's packaged files are: the one place that computes the config folder's path.

The configs live in the repository's top-level ``conf/`` folder; a wheel installs that folder as
``tinkerx/conf/`` (``setup.py`` maps it). So an installed package finds them beside this module,
and a checkout or an editable install (whose ``tinkerx/`` is the repository's) one folder up.
Run outputs never go here: Hydra writes them under the current directory.
"""

from __future__ import annotations

from pathlib import Path

from tinkerx.errors import UserError

_PACKAGE_DIR = Path(__file__).resolve().parent


def _config_dir() -> Path:
    candidates = (_PACKAGE_DIR / "conf", _PACKAGE_DIR.parent / "conf")
    for candidate in candidates:
        if (candidate / "config.yaml").is_file():
            return candidate
    # Only a broken install gets here; naming both places tells the user what is missing.
    raise UserError(f"tinkerx's configs are missing: no config.yaml in {' or '.join(map(str, candidates))}; reinstall tinkerx")


CONFIG_DIR = _config_dir()
EXPERIMENT_DIR = CONFIG_DIR / "experiment"

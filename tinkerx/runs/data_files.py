"""The data files a run read: absolute paths in its config and their sha256 in ``data_files.json``.

A relative ``dataset.path`` means nothing from another directory, and a file edited since the run
would silently reproduce something else; with both recorded, ``tinkerx.reproduce`` can run from
anywhere and refuse when the data changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from tinkerx.errors import DataError

DATA_FILES = "data_files.json"


def is_path_key(key: str) -> bool:
    return key == "path" or key.endswith("_path")


def _path_values(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, raw value) for every ``path`` / ``*_path`` string; interpolations follow their target."""
    if isinstance(node, dict):
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                yield from _path_values(value, f"{dotted}.")
            elif is_path_key(str(key)) and isinstance(value, str) and not value.startswith(("${", "???")):
                yield dotted, value


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def record_data_files(cfg: DictConfig, run_dir: Path) -> dict[str, dict[str, str]]:
    """Makes relative file paths in ``cfg`` absolute (from the working directory) and writes their hashes."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    files: dict[str, dict[str, str]] = {}
    for key, value in _path_values(raw):
        path = Path(value).expanduser()
        if not path.is_file():
            continue  # a hub name, a tinker:// path or a missing file the component reports itself
        absolute = path.resolve()
        if str(absolute) != value:
            OmegaConf.update(cfg, key, str(absolute), merge=False)
        files[key] = {"path": str(absolute), "sha256": sha256(absolute)}
    if files:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / DATA_FILES).write_text(json.dumps(files, indent=2) + "\n")
    return files


def recorded_data_overrides(run_dir: Path, overridden: set[str]) -> list[str]:
    """``key=/absolute/path`` for each data file the run read, after checking it is unchanged.

    Keys in ``overridden`` (the user gave another file) are left alone. UserError when a file is
    gone or its content changed.
    """
    record = Path(run_dir) / DATA_FILES
    if not record.is_file():
        return []
    overrides = []
    for key, entry in json.loads(record.read_text()).items():
        if key in overridden:
            continue
        path = Path(entry["path"])
        if not path.is_file():
            raise DataError(f"cannot reproduce {run_dir}: its data file {path} ({key}) is gone; pass {key}=PATH to use another")
        digest = sha256(path)
        if digest != entry["sha256"]:
            raise DataError(f"cannot reproduce {run_dir}: {path} ({key}) changed since the run "
                            f"(sha256 {entry['sha256'][:12]}…, now {digest[:12]}…); pass {key}=PATH to run on other data")
        overrides.append(f"{key}={quote_override_value(str(path))}")
    return overrides


def quote_override_value(value: str) -> str:
    """Hydra's override grammar reads ``,`` as a sweep and stops at spaces: quote such values."""
    if re.fullmatch(r"[\w/.~+@:-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

"""Local JSON-lines files, read through the ``datasets`` library.

Every line is checked first so a bad file is reported as one line naming the path and the line
number, rather than as an Arrow traceback from deep inside ``datasets``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinkerx.errors import DataError


def check_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> Path:
    """Fail with a one-line ``DataError`` unless ``path`` is JSON lines with the ``required`` fields."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    rows = 0
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{line_no}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in required if k not in row]
            if missing:
                raise DataError(
                    f"{path}:{line_no}: missing field(s) {', '.join(missing)}; "
                    f"present: {', '.join(sorted(row)) or 'none'}"
                )
            rows += 1
    if rows == 0:
        raise DataError(f"{path}: no records")
    return path


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Validate then load ``path`` with ``datasets.load_dataset('json')`` (works offline)."""
    path = check_jsonl(path, required)
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    return list(ds)

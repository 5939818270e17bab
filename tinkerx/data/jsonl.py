"""Local JSON-lines files, read through the ``datasets`` library.

Every line is checked first so a bad file is reported as one line naming the path and the line
number, rather than as an Arrow traceback from deep inside ``datasets``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from tinkerx.errors import DataError


def jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of ``path``; a line that is not a JSON object is
    a one-line ``DataError`` naming the file and the line."""
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
            yield line_no, row


def check_jsonl(path: str | Path, required: tuple[str, ...] = (), text: tuple[str, ...] = ()) -> Path:
    """Fail with a one-line ``DataError`` unless ``path`` is JSON lines with the ``required`` fields
    and the ``text`` fields (where present) hold text (see ``check_text``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    rows = 0
    for line_no, row in jsonl_objects(path):
        missing = [k for k in required if k not in row]
        if missing:
            raise DataError(
                f"{path}:{line_no}: missing field(s) {', '.join(missing)}; "
                f"present: {', '.join(sorted(row)) or 'none'}"
            )
        for name in text:
            if name in row:
                check_text(row[name], f"{path}:{line_no}", name)
        rows += 1
    if rows == 0:
        raise DataError(f"{path}: no records")
    return path


def check_text(value: Any, where: str, name: str) -> None:
    """A field read as text must be text: a string, or a number (an answer such as 42).

    A list or an object is never turned into its Python repr and trained on: a list of messages
    says so (conversations are read by dataset=chat, preference pairs of messages by dataset=preference_jsonl),
    anything else names its type.
    """
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return
    if value is None:
        raise DataError(f"{where}: field {name!r} is null; expected text")
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        raise DataError(f"{where}: field {name!r} is a list of chat messages, not text; conversations need the chat data set: "
                        "dataset=chat (SFT, evaluation) or dataset=preference_jsonl (DPO pairs)")
    raise DataError(f"{where}: field {name!r} must be text, got a JSON {_json_type(value)}")


def _json_type(value: Any) -> str:
    return {list: "list", dict: "object", bool: "boolean"}.get(type(value), type(value).__name__)


def read_jsonl(path: str | Path, required: tuple[str, ...] = (), text: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Validate then load ``path`` with ``datasets.load_dataset('json')`` (works offline).

    ``text`` names the fields the caller reads as text: each must be a string or a number.
    """
    path = check_jsonl(path, required, text)
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    return list(ds)

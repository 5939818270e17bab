"""Judgments kept in the run folder (``judgments.jsonl``), keyed by (rubric, judge, prompt, reply):
a resumed or reproduced run asks the judge only about replies it has not judged yet.

Every judgment is one JSON line with what was judged beside the verdict, so the file is also
the record of each sample's judgment. A line cut short by a crash is skipped on reading.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path
from typing import Any

FILENAME = "judgments.jsonl"


def judgment_key(rubric: str, judge: str, prompt: str, replies: list[str], reference: str | None) -> str:
    text = json.dumps([rubric, judge, prompt, replies, reference], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


_OPEN: dict[Path, "JudgmentCache"] = {}
_OPEN_LOCK = threading.Lock()


def shared_cache(path: Path) -> "JudgmentCache":
    """The one cache of a file in this process: a reward judge and an evaluator judge of the same
    run see each other's judgments as soon as they are made."""
    path = Path(path).resolve()
    with _OPEN_LOCK:
        if path not in _OPEN:
            _OPEN[path] = JudgmentCache(path)
        return _OPEN[path]


class JudgmentCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and "key" in entry:
                    self._entries[entry["key"]] = entry

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, entries: list[dict[str, Any]]) -> None:
        """Keeps and appends judgments; only ones the judge answered (an error is asked again next time)."""
        with self._lock:
            for entry in entries:
                self._entries[entry["key"]] = entry
            if self.path is not None and entries:
                with self.path.open("a", encoding="utf-8") as f:
                    f.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)

    def __len__(self) -> int:
        return len(self._entries)


def carry_judgments(run_dir: Path, new_dir: Path) -> None:
    """A reproduction starts with the original's judgments: it asks only what the original did not."""
    source = Path(run_dir) / FILENAME
    if source.is_file():
        Path(new_dir).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, Path(new_dir) / FILENAME)

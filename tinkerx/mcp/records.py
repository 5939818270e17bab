"""What a session writes beside its runs: every tool call, and a heartbeat while it works.

``tool_calls.jsonl`` is what ``tinkerx.mcp.replay`` plays back, so each line carries the call's
arguments and, for calls that train, the steps actually taken (a cancelled call takes fewer).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

TOOL_CALLS = "tool_calls.jsonl"
HEARTBEAT = "heartbeat.json"
SESSION_FILE = "session.json"  # the server's own config overrides (backend, model, ...)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class SessionRecords:
    def __init__(self, session_dir: Path) -> None:
        self.dir = Path(session_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._calls = sum(1 for _ in (self.dir / TOOL_CALLS).open()) if (self.dir / TOOL_CALLS).is_file() else 0

    def write_session(self, overrides: list[str]) -> None:
        _write_atomic(self.dir / SESSION_FILE, json.dumps({"overrides": overrides, "pid": os.getpid(), "started": time.time()}, indent=2) + "\n")

    def tool_call(self, tool: str, arguments: dict[str, Any], started: float, result: Any = None, error: str | None = None) -> None:
        with self._lock:
            self._calls += 1
            row = {
                "call": self._calls,
                "tool": tool,
                "arguments": arguments,
                "ok": error is None,
                "started": started,
                "duration_s": round(time.time() - started, 3),
            }
            row.update({"error": error} if error is not None else {"result": result})
            with (self.dir / TOOL_CALLS).open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, default=str) + "\n")

    def write_checkpoints(self, checkpoints: list[dict[str, Any]]) -> None:
        _write_atomic(self.dir / "checkpoints.json", json.dumps(checkpoints, indent=2) + "\n")

    def heartbeat(self, tool: str | None, **progress: Any) -> None:
        """Rewritten on every step: a watcher sees the server is alive and how far it got."""
        beat = {"time": time.time(), "pid": os.getpid(), "tool": tool, **progress}
        _write_atomic(self.dir / HEARTBEAT, json.dumps(beat, default=str) + "\n")


def read_tool_calls(session_dir: Path) -> list[dict[str, Any]]:
    path = Path(session_dir) / TOOL_CALLS
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_session(session_dir: Path) -> dict[str, Any]:
    path = Path(session_dir) / SESSION_FILE
    return json.loads(path.read_text()) if path.is_file() else {"overrides": []}

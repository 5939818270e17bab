"""What the server knows: sessions, training models, samplers and saved checkpoints.

Ids follow Tinker's conventions so the SDK can derive them itself: a model is
``{session}:train:{n}``, a sampler ``{session}:sample:{n}``, a checkpoint
``tinker://{model}/weights/{name}`` (``sampler_weights`` for sampler checkpoints).
Checkpoints are listed in ``checkpoints.json`` under the server's state folder so their
``tinker://`` paths keep resolving after a restart.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tinkerx.serve.http_errors import Conflict
from tinkerx.serve.lanes import Lane
from tinkerx.serve.security import confined


def digest(body: Any) -> str:
    """A stable fingerprint of a request body: a resent seq_id must carry the same one."""
    raw = body if isinstance(body, bytes) else json.dumps(body, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()


@dataclass
class Model:
    model_id: str
    client: Any  # the backend's training client
    base_model: str
    rank: int | None
    lane: Lane
    ops: dict[str, int] = field(default_factory=dict)  # applied operations by type, for /tinkerx/stats


@dataclass
class Sampler:
    sampler_id: str
    client: Any  # the backend's sampling client
    base_model: str
    model_path: str | None
    lanes: dict[int, Lane] = field(default_factory=dict)  # one per clone of the sampling client


class Registry:
    def __init__(self, state_dir: Path) -> None:
        self.sessions: dict[str, str] = {}  # session id -> "active" | "finished"
        self.last_seen: dict[str, float] = {}  # session id -> monotonic time of its last request
        self.created: dict[str, float] = {}  # session id -> wall-clock creation time, for the REST listing
        self.models: dict[str, Model] = {}
        self.ops: dict[str, dict[str, int]] = {}  # every model's applied operations, kept after it is gone
        self.samplers: dict[str, Sampler] = {}
        # (model or sampler id, seq_id) -> (digest of the body, the answer): a retried submission
        # gets the first answer, so a step whose reply was lost is never applied twice.
        self.submitted: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
        self.state_dir = state_dir
        self._index_path = state_dir / "checkpoints.json"
        self.checkpoints: dict[str, dict[str, Any]] = (
            json.loads(self._index_path.read_text()) if self._index_path.exists() else {}
        )

    def add_model(self, model: Model) -> None:
        self.models[model.model_id] = model
        self.ops[model.model_id] = model.ops

    def new_session(self) -> str:
        session_id = f"session-{uuid.uuid4().hex[:12]}"
        self.sessions[session_id] = "active"
        self.created[session_id] = time.time()
        self.touch(session_id)
        return session_id

    def submit_once(self, key: tuple[str, int], digest: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The answer to the first submission of ``key``; a resubmission must carry the same body."""
        if key in self.submitted:
            first_digest, answer = self.submitted[key]
            if first_digest != digest:
                raise Conflict(f"seq_id {key[1]} of {key[0]} was already submitted with a different body")
            return answer
        answer = make()
        self.submitted[key] = (digest, answer)
        return answer

    def touch(self, session_id: str) -> None:
        if self.sessions.get(session_id) == "active":
            self.last_seen[session_id] = time.monotonic()

    def silent_sessions(self, timeout_s: float) -> list[str]:
        now = time.monotonic()
        return [s for s, state in self.sessions.items() if state == "active" and now - self.last_seen.get(s, now) > timeout_s]

    def add_checkpoint(self, model: Model, kind: str, name: str, local_path: str) -> str:
        path = f"tinker://{model.model_id}/{kind}/{name}"
        self.checkpoints[path] = {
            "local_path": local_path, "base_model": model.base_model, "rank": model.rank, "time": time.time(),
        }  # fmt: skip
        self._save_index()
        return path

    def delete_checkpoint(self, path: str) -> None:
        local = self.checkpoint(path)["local_path"]
        del self.checkpoints[path]
        self._save_index()
        shutil.rmtree(local, ignore_errors=True)

    def _save_index(self) -> None:
        self._index_path.write_text(json.dumps(self.checkpoints, indent=2))

    def finish_session(self, session_id: str) -> None:
        """Forget the session's models and samplers (their weights are memory); checkpoints stay."""
        self.sessions[session_id] = "finished"
        prefix = f"{session_id}:"
        for table in (self.models, self.samplers):
            for key in [k for k in table if k.startswith(prefix)]:
                del table[key]
        self.submitted = {k: v for k, v in self.submitted.items() if not k[0].startswith(prefix)}

    def checkpoint(self, path: str) -> dict[str, Any]:
        if path not in self.checkpoints:
            raise KeyError(f"unknown checkpoint {path!r}; this server saved {len(self.checkpoints)} checkpoint(s)")
        return self.checkpoints[path]

    def local_path(self, path: str) -> str:
        """Where checkpoint ``path`` lives, refused if that is outside the state folder (an edited index, a symlink)."""
        return confined(self.checkpoint(path)["local_path"], self.state_dir)

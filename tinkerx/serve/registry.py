"""What the server knows: sessions, training models, samplers and saved checkpoints.

Ids follow Tinker's conventions so the SDK can derive them itself: a model is
``{session}:train:{n}``, a sampler ``{session}:sample:{n}``, a checkpoint
``tinker://{model}/weights/{name}`` (``sampler_weights`` for sampler checkpoints).
Checkpoints are listed in ``checkpoints.json`` under the server's state folder so their
``tinker://`` paths keep resolving after a restart.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinkerx.serve.lanes import Lane


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
        self.models: dict[str, Model] = {}
        self.ops: dict[str, dict[str, int]] = {}  # every model's applied operations, kept after it is gone
        self.samplers: dict[str, Sampler] = {}
        # (model or sampler id, seq_id) -> request id: a retried submission gets the first answer,
        # so a step whose reply was lost is never applied twice.
        self.submitted: dict[tuple[str, int], str] = {}
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
        return session_id

    def add_checkpoint(self, model: Model, kind: str, name: str, local_path: str) -> str:
        path = f"tinker://{model.model_id}/{kind}/{name}"
        self.checkpoints[path] = {"local_path": local_path, "base_model": model.base_model, "rank": model.rank}
        self._index_path.write_text(json.dumps(self.checkpoints, indent=2))
        return path

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

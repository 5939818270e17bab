"""``logger=wandb``: metrics and the summary to Weights & Biases (``mode: offline`` works with no network)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any


class WandbLogger:
    def __init__(self, project: str = "tinkerx", entity: str | None = None, mode: str = "online", tags: list[str] | None = None, group: str | None = None) -> None:
        if mode not in ("online", "offline", "disabled"):
            from tinkerx.errors import ConfigError

            raise ConfigError(f"logger.mode must be online, offline or disabled, got {mode!r}")
        self.project, self.entity, self.mode, self.tags, self.group = project, entity, mode, list(tags or []), group
        self._run = None

    def start(self, run_dir: Path, config: dict[str, Any], name: str) -> None:
        import wandb

        # A resumed run (tinkerx.resume) continues the same W&B run rather than starting a second one.
        id_file = Path(run_dir) / "wandb_run_id.txt"
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id + "\n")
        self._run = wandb.init(
            id=run_id,
            resume="allow",
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            dir=str(run_dir),
            name=name,
            group=self.group,
            tags=self.tags,
            config=config,
            reinit="finish_previous",  # multirun trials share one process
        )

    def log(self, step: int, row: dict[str, Any]) -> None:
        if self._run is not None:
            self._run.log({k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}, step=step)

    def finish(self, summary: dict[str, Any]) -> None:
        if self._run is None:
            return
        for key, value in _flatten(summary).items():
            self._run.summary[key] = value
        self._run.finish()
        self._run = None


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        elif isinstance(value, (int, float, str, bool)):
            flat[name] = value
    return flat

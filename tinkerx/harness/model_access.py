"""One model, base or checkpoint, on the local backend or Tinker, opened for a harness to sample and score.

The harness names things as a tinkerx user does: ``model=smollm2-135m`` (a ``conf/model`` option),
``checkpoint=`` a checkpoint folder, a run folder (its final checkpoint) or a ``tinker://`` path, and
``backend=local|tinker`` with any further config overrides (``backend.base_url=...``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinkerx.errors import ConfigError
from tinkerx.runs.compose import compose_config


@dataclass
class OpenedModel:
    client: Any                 # a sampling client: sample / compute_logprobs (and the local backend's batched forms)
    tokenizer: Any
    base_model: str
    context_length: int | None
    checkpoint: str | None
    _closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for closer in self._closers:
            closer.close()
        self._closers.clear()


def open_model(model: str, checkpoint: str | None = None, backend: str = "local", overrides: list[str] | None = None,
               work_dir: str | Path | None = None, seed: int = 0) -> OpenedModel:
    from tinkerx.build import instantiate
    from tinkerx.runs.checkpoints import checkpoint_base_model, resolve_checkpoint

    cfg = compose_config([f"model={model}", f"backend={backend}", f"seed={seed}", *(overrides or [])])
    local = None
    if checkpoint:
        local = resolve_checkpoint(str(checkpoint), "checkpoint")
        if "://" not in local:
            if not (Path(local) / "meta.json").is_file():
                raise ConfigError(f"checkpoint: {local} holds no tinkerx checkpoint (no meta.json); give a checkpoint folder or a run folder with summary.json")
            trained_from = checkpoint_base_model(local)
            if trained_from and trained_from != cfg.model.base_model:
                raise ConfigError(f"checkpoint: {local} was trained from {trained_from}, not model={model} ({cfg.model.base_model}); name its model")
    loader = instantiate(cfg.model.loader, "model.loader")
    opened_backend = instantiate(cfg.backend, "backend")
    run_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="tinkerx-harness-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    service = opened_backend.open([loader], run_dir, seed=seed)
    try:
        client = service.create_sampling_client(model_path=local, base_model=None if local else cfg.model.base_model)
        client = client.result()  # the SDK hands out a future; the local backend's client is its own result
    except (FileNotFoundError, ValueError) as e:
        opened_backend.close()
        raise ConfigError(f"checkpoint: cannot load {local}: {' '.join(str(e).split())}") from None
    tokenizer = loader.load_tokenizer()
    return OpenedModel(client, tokenizer, cfg.model.base_model, cfg.model.get("context_length"), local, [opened_backend])

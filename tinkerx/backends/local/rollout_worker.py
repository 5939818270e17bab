"""A rollout worker: a copy of a trained model that only samples, on a thread of its own.

With one model, sampling waits for training and training for sampling: the service's single
worker runs them in turn. A rollout worker holds a second copy of the model (the same LoRA
adapters, loaded from each sampling client's weight snapshot before it samples) and runs sampling
on its own thread, so a method that sends rollouts before it trains (GRPO's ``overlap_rollouts``)
gets both at once -- as the Tinker service does, and as TRL does with a separate vLLM engine. On
the training device the copy shares the frozen base weights with the trained model (only the
trainable tensors are its own); on another device (``cuda:1``) it is a whole copy there.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import torch

from tinkerx.backends.local.engine import ModelEngine, WeightsSnapshot

T = TypeVar("T")


class RolloutEngine(ModelEngine):
    """A ModelEngine that never trains: sampling loads the snapshot's trainable tensors into it."""

    _loaded_version: int | None = None

    def _use_snapshot(self, snapshot: WeightsSnapshot | None) -> None:
        if snapshot is None or snapshot.version == self._loaded_version:
            return
        self._load_tensors(snapshot.tensors)
        self._loaded_version = snapshot.version


class RolloutWorker:
    def __init__(self, training: ModelEngine, loader: Any, device: torch.device) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinkerx-rollout")
        self.engine = self._executor.submit(self._build, training, loader, device).result()

    @staticmethod
    def _build(training: ModelEngine, loader: Any, device: torch.device) -> RolloutEngine:
        engine = RolloutEngine(loader, device=device, dtype=training.dtype, rank=training.rank, seed=training.seed, trainable=True,
                               max_batch_rows=training.max_batch_rows, prefix_cache_tokens=training.prefix_cache.max_tokens, **training.lora)
        engine.trainable = False
        trained = dict(training.model.named_parameters(remove_duplicate=False))
        for name, param in list(engine.model.named_parameters(remove_duplicate=False)):
            param.requires_grad_(False)
            source = trained.get(name)
            # Frozen in the trained model: never written, so one tensor serves both models.
            if source is not None and not source.requires_grad and source.device == param.device and source.shape == param.shape:
                module, _, leaf = name.rpartition(".")
                engine.model.get_submodule(module)._parameters[leaf] = source
        return engine

    def submit(self, fn: Callable[[], T]) -> "Future[T]":
        return self._executor.submit(fn)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

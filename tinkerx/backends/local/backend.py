"""``backend=local``: the Tinker-shaped clients over PyTorch + transformers in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from tinkerx.backends.local.device import DTYPES


class LocalBackend:
    packs = True  # its engine honours packed datums' boundaries (training.packing)

    def __init__(self, device: str = "auto", dtype: str = "float32", num_threads: int | None = None, max_batch_rows: int | None = None,
                 rollout_device: str | None = None, prefix_cache_tokens: int | str = 0) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"backend.dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if max_batch_rows is not None and (isinstance(max_batch_rows, bool) or not isinstance(max_batch_rows, int) or max_batch_rows < 1):
            raise ValueError(f"backend.max_batch_rows must be a positive integer or null (no limit), got {max_batch_rows!r}")
        if prefix_cache_tokens == "auto":
            # A run resolves auto in tinkerx.build (a cache only for multi-turn sampling); elsewhere
            # (serve, judges, harnesses, tag) nothing is known to extend earlier prompts: off.
            prefix_cache_tokens = 0
        if isinstance(prefix_cache_tokens, bool) or not isinstance(prefix_cache_tokens, int) or prefix_cache_tokens < 0:
            raise ValueError(f"backend.prefix_cache_tokens must be auto or an integer >= 0 (0 turns the cache off), got {prefix_cache_tokens!r}")
        self.prefix_cache_tokens = prefix_cache_tokens
        self.device_name, self.dtype_name, self.num_threads = device, dtype, num_threads
        self.max_batch_rows = max_batch_rows
        self.rollout_device = rollout_device
        self._service = None

    def open(self, model_loaders: Any | Sequence[Any], run_dir: Path, seed: int = 0):
        import torch

        from tinkerx.backends.local.clients import LocalServiceClient
        from tinkerx.backends.local.device import resolve_device, resolve_dtype

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        loaders = list(model_loaders) if isinstance(model_loaders, (list, tuple)) else [model_loaders]
        self._service = LocalServiceClient(
            loaders,
            device=resolve_device(self.device_name),
            dtype=resolve_dtype(self.dtype_name),
            checkpoint_dir=Path(run_dir) / "checkpoints",
            seed=seed,
            max_batch_rows=self.max_batch_rows,
            prefix_cache_tokens=self.prefix_cache_tokens,
            rollout_device=None if self.rollout_device is None else resolve_device(str(self.rollout_device), "backend.rollout_device"),
        )
        return self._service

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None

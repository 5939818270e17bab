"""``backend=local``: the Tinker-shaped clients over PyTorch + transformers in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from tinkerx.backends.local.device import DTYPES


class LocalBackend:
    def __init__(self, device: str = "auto", dtype: str = "float32", num_threads: int | None = None) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"backend.dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.device_name, self.dtype_name, self.num_threads = device, dtype, num_threads
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
        )
        return self._service

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None

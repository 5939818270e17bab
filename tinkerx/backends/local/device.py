"""Device and dtype names from config, resolved once."""

from __future__ import annotations

DTYPES = ("float32", "bfloat16", "float16")


def resolve_device(name: str, setting: str = "backend.device"):
    import torch

    from tinkerx.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{setting} {name!r} is not a device; valid: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ConfigError(f"{setting}={name} but {build} (torch {torch.__version__}): "
                              f"use {setting}=cpu or auto, or install a CUDA build of torch")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{setting}={name} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def resolve_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; valid: {', '.join(DTYPES)}")
    return getattr(torch, name)

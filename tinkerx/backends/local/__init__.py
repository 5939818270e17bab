"""The local backend: Tinker's client API served by PyTorch + transformers in-process.

Import ``LocalBackend`` from here; the clients are imported lazily by ``LocalBackend.open`` so that
composing a config does not pull in torch.
"""

from tinkerx.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]

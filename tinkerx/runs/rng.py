"""Random-number-generator states as plain JSON values, so a resumed run draws what an unbroken one would."""

from __future__ import annotations

import base64
import random
from typing import Any


def restore_random_state(state: Any) -> tuple:
    """``random.Random.getstate()`` after a JSON round trip (its tuples came back as lists)."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def global_rng_state() -> dict[str, Any]:
    """Python's, numpy's and torch's process-wide generators (a custom reward may draw from them)."""
    import numpy as np  # deferred: with torch, below
    import torch  # deferred: torch stays off the CLI's start-up path

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": _encode(torch.get_rng_state()),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    import numpy as np  # deferred: with torch, below
    import torch  # deferred: torch stays off the CLI's start-up path

    random.setstate(restore_random_state(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_decode(state["torch"]))


def generator_state(generator: Any) -> str:
    """A ``torch.Generator``'s state as text."""
    return _encode(generator.get_state())


def set_generator_state(generator: Any, text: str) -> None:
    generator.set_state(_decode(text))


def _encode(tensor: Any) -> str:
    return base64.b64encode(tensor.numpy().tobytes()).decode("ascii")


def _decode(text: str) -> Any:
    import torch  # deferred: as above

    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()

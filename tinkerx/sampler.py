"""Issuing many sampling requests at once, on any backend.

Against the service every prompt is its own request, all in flight together; the local backend's
clients also offer ``sample_many``, which decodes the same prompts as one batch (much faster on a
CPU or a single GPU). Methods call ``sample_prompts`` and never need to know which they have.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Sequence


def sample_prompts(sampling_client: Any, prompts: Sequence[Sequence[int]], num_samples: int, params: Any) -> list["Future[Any]"]:
    from tinker import types

    inputs = [types.ModelInput.from_ints(list(p)) for p in prompts]
    batched = getattr(sampling_client, "sample_many", None)
    if batched is not None:
        return batched(inputs, num_samples, params)
    return [sampling_client.sample(prompt=i, num_samples=num_samples, sampling_params=params) for i in inputs]

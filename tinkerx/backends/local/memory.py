"""Running out of memory in a forward/backward pass is a clean, one-line stop.

PyTorch reports it three ways: ``torch.OutOfMemoryError`` on CUDA, ``RuntimeError`` from the CPU
allocator (``DefaultCPUAllocator: can't allocate memory``), and Python's ``MemoryError``. Each
becomes ``tinkerx.errors.OutOfMemoryError`` (a ``UserError``: the CLI prints one line, exit 2)
saying which step, which sequence lengths, and which keys lower the footprint.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from tinkerx.errors import OutOfMemoryError

# What lowers a training step's peak memory, most direct first.
REMEDIES = "lower training.max_tokens_per_forward, training.batch_size or dataset.max_length"

_CPU_ALLOCATOR_MESSAGES = ("can't allocate memory", "cannot allocate memory", "out of memory")


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error).lower() for m in _CPU_ALLOCATOR_MESSAGES)


def describe(step: int, lengths: Sequence[int], budget: int | None, backward: bool) -> str:
    what = "forward_backward" if backward else "forward"
    shape = f"{len(lengths)} sequences of {min(lengths)}-{max(lengths)} tokens ({sum(lengths)} in all)" if lengths else "no sequences"
    limit = f"training.max_tokens_per_forward={budget}" if budget is not None else "no token budget"
    return f"out of memory in {what} of step {step}: {shape}, {limit}; {REMEDIES}"


@contextmanager
def memory_guard(engine: Any, rows: Sequence[Any], backward: bool) -> Iterator[None]:
    """Turns an allocation failure inside the block into ``OutOfMemoryError``, gradients dropped
    (a half-accumulated step must not be applied by a later optimizer step)."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:  # torch.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(error):
            raise
        _release(engine)
        message = describe(engine.steps + 1, [len(r.tokens) for r in rows], engine.token_budget, backward)
        raise OutOfMemoryError(message) from None


def _release(engine: Any) -> None:
    import torch

    engine.model.zero_grad(set_to_none=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

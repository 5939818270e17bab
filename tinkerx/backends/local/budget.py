"""How many tokens one forward/backward pass may hold, and how a batch is cut to stay under it.

A training batch of long sequences holds activations for every token at once: SmolLM2-135M keeps
a few MB per token for the backward pass, so 32 sequences of 2k tokens want hundreds of GB. The
local backend therefore runs a batch as micro-batches of at most ``max_tokens_per_forward`` padded
tokens each and accumulates their gradients. Tinker's losses are sums over tokens (``losses.py``),
so the accumulated gradient is the one-pass gradient, only summed in another order.

``training.max_tokens_per_forward: null`` derives the budget from the model and the device's memory
(``auto_token_budget``), so the offline defaults never need it set; a number overrides it.
"""

from __future__ import annotations

import os
import resource
from typing import Any, Sequence

# Share of the device's memory that one pass's activations may take: the rest is the weights, the
# optimizer state, the gradients, the sampler's KV cache and other processes.
MEMORY_SHARE = 0.25


def activation_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """An upper estimate of what one trained token holds for the backward pass.

    Per layer: about 24 hidden-sized and 6 MLP-sized tensors (norms, projections, attention
    output, the gated MLP's three branches); at the end the vocabulary's logits in float32 with
    their log-softmax and gradient. Attention scores are left out: the kernels used here do not
    keep them (SDPA), and a sequence's quadratic part does not shrink by splitting a batch anyway.
    """
    hidden = int(getattr(config, "hidden_size", 1024))
    layers = int(getattr(config, "num_hidden_layers", 24))
    intermediate = int(getattr(config, "intermediate_size", 4 * hidden))
    vocab = int(getattr(config, "vocab_size", 32000))
    return dtype_bytes * layers * (24 * hidden + 6 * intermediate) + 12 * vocab


def device_memory_bytes(device: Any) -> int:
    """What the device holds in all: a CUDA device's total memory; on CPU the machine's RAM, or less
    where a limit says so (``ulimit -v`` / RLIMIT_AS, a container's cgroup ``memory.max``).

    The total, not what is free: free memory moves with whatever else runs, and the budget decides
    how a batch is cut into passes -- and so the order of the float sums. Read from free memory, a
    resumed run, or a rerun on the same machine, could cut its batches otherwise than the first."""
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    candidates = [_meminfo_kb("/proc/meminfo", "MemTotal:") * 1024 or os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        candidates.append(soft)
    cgroup = _read_int("/sys/fs/cgroup/memory.max")
    if cgroup is not None:
        candidates.append(cgroup)
    return max(0, min(candidates))


def _meminfo_kb(path: str, key: str) -> int:
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _read_int(path: str) -> int | None:
    """An integer file such as a cgroup limit; None when absent or unlimited ("max")."""
    try:
        text = open(path, encoding="ascii").read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def auto_token_budget(config: Any, dtype_bytes: int, device: Any) -> int:
    """The default budget: ``MEMORY_SHARE`` of the device's memory over ``activation_bytes_per_token``,
    rounded down to a power of two (machines with a little more or less memory cut alike).

    No floor at the model's context: a sequence longer than the budget runs alone anyway
    (``micro_batches``), and a floor let batches of short sequences run in one pass that memory
    cannot hold -- SmolLM2's 8,192-token context let 16 pairs' 512-token sequences (~24 GB) into one
    pass on a 24 GB machine, and a 32k-context 8B model's floor is hundreds of GB of activations."""
    fits = int(MEMORY_SHARE * device_memory_bytes(device) // activation_bytes_per_token(config, dtype_bytes))
    return 1 << (max(fits, 1).bit_length() - 1)


def padded_tokens(lengths: Sequence[int]) -> int:
    """What a batch costs in one padded pass: every row as long as the longest."""
    return len(lengths) * max(lengths) if lengths else 0


def micro_batches(lengths: Sequence[int], members: Sequence[int], budget: int | None) -> list[list[int]]:
    """``members`` (indices into ``lengths``) cut, in order, into runs of at most ``budget`` padded tokens.

    Order is kept so a batch that fits runs exactly as it always did (one pass, same summation
    order). A sequence longer than the budget on its own runs alone: it cannot be split.
    """
    if budget is None or padded_tokens([lengths[i] for i in members]) <= budget:
        return [list(members)]
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in members:
        wider = max(width, lengths[i])
        if current and (len(current) + 1) * wider > budget:
            batches.append(current)
            current, wider = [], lengths[i]
        current.append(i)
        width = wider
    if current:
        batches.append(current)
    return batches

"""How many tokens one forward/backward pass may hold, and how a batch is cut to stay under it.

A training batch of long sequences holds activations for every token at once: SmolLM2-135M keeps
a few MB per token for the backward pass, so 32 sequences of 2k tokens want hundreds of GB. The
local backend therefore runs a batch as micro-batches of at most ``max_tokens_per_forward`` padded
tokens each and accumulates their gradients. Tinker's losses are sums over tokens (``losses.py``),
so the accumulated gradient is the one-pass gradient, only summed in another order.

``training.max_tokens_per_forward: null`` derives the budget from the model and the device's free
memory (``auto_token_budget``), so the offline defaults never need it set; a number overrides it.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

# Share of the memory free when the model is loaded that one pass's activations may take: the
# rest is the optimizer state, the gradients, the sampler's KV cache and other processes.
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


def free_memory_bytes(device: Any) -> int:
    """Memory the next allocations can use: free device memory on CUDA, available RAM on CPU."""
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return available_ram_bytes()


def available_ram_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux); elsewhere the free physical pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def auto_token_budget(config: Any, dtype_bytes: int, device: Any, context_length: int) -> int:
    """The default budget: ``MEMORY_SHARE`` of free memory over ``activation_bytes_per_token``,
    never below one sequence of the model's full context (a sequence cannot be split)."""
    fits = int(MEMORY_SHARE * free_memory_bytes(device) // activation_bytes_per_token(config, dtype_bytes))
    return max(fits, int(context_length))


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

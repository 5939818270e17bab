"""A batch of Tinker datums as the engine computes them: each datum parsed into tokens, targets and
loss inputs, which positions need a gradient, and which datums share a gradient-free prefix."""

from __future__ import annotations

from typing import Any

import torch


# The loss input of a packed datum (tinkerx.methods.sft.packing) numbering each position's example;
# the engine reads it as attention boundaries, never as a loss input.
SEGMENTS = "segment_ids"


class Row:
    """One datum, parsed: its tokens, targets, loss inputs and the positions whose logprob needs a gradient.

    ``segments`` (a packed datum's ``segment_ids``, tinkerx.methods.sft.packing): the example each position
    belongs to; None for a datum that is one example.
    """

    def __init__(self, tokens: list[int], targets: torch.Tensor, inputs: dict[str, torch.Tensor], grad: torch.Tensor,
                 segments: torch.Tensor | None = None) -> None:
        self.tokens, self.targets, self.inputs, self.grad, self.segments = tokens, targets, inputs, grad, segments


# Losses whose every term vanishes, with its gradient, where all float inputs are zero (the prompt
# of an RL datum, the unweighted tokens of an SFT one). dro's quadratic term does not: it trains everywhere.
_SPARSE_LOSSES = {"cross_entropy", "importance_sampling", "ppo", "cispo", "gspo"}
_THRESHOLDS = {"clip_low_threshold", "clip_high_threshold"}


def grad_positions(loss_fn: str, inputs: dict[str, torch.Tensor], length: int, backward: bool) -> torch.Tensor:
    if not backward:
        return torch.zeros(length, dtype=torch.bool)
    if loss_fn not in _SPARSE_LOSSES:
        return torch.ones(length, dtype=torch.bool)
    active = torch.zeros(length, dtype=torch.bool)
    for name, values in inputs.items():
        if name not in _THRESHOLDS:
            active |= (values != 0).cpu()
    return active


def packed_attention(segments: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(attention mask [B, 1, W, W], position ids [B, W])`` for rows of packed examples.

    ``segments`` [B, W] numbers each position's example (padding: a segment of its own). A position
    attends to earlier positions of its own example only, and positions restart at 0 per example.
    The mask is additive (0 or the dtype's minimum): transformers passes a 4-D mask through as is,
    and both its sdpa and eager attention add a float mask (eager would misread a boolean one).
    Position ids alone are not enough: transformers infers packing from them only without a 2-D
    mask and without a KV cache, and silently attends across examples otherwise (measured on
    transformers 5.25, tests/test_packing.py).
    """
    width = segments.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segments.device).tril()
    allowed = (segments[:, :, None] == segments[:, None, :]) & causal
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device).masked_fill(~allowed, torch.finfo(dtype).min)
    index = torch.arange(width, device=segments.device).expand_as(segments)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    first = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values  # each position's example start
    return mask[:, None], index - first


def shared_prefix_groups(rows: list[Row]) -> list[tuple[int, list[int]]]:
    """Datums grouped by their tokens before the first position with a gradient.

    Returns (prefix length, member indices); a datum with nothing to share is its own group with
    prefix length 0. Only the gradient-free prefix is shared, so sharing never changes a gradient.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, r in enumerate(rows):
        if r.segments is not None:  # a packed row shares nothing: a cached prefix would ignore its mask
            groups.setdefault((), []).append(i)
            continue
        first = int(r.grad.nonzero()[0]) if bool(r.grad.any()) else len(r.tokens)
        groups.setdefault(tuple(r.tokens[: min(first, len(r.tokens) - 1)]), []).append(i)
    return [(len(key), members) for key, members in groups.items()]


def target_logprobs(head: Any, hidden: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """log p(target) at every valid position; the vocabulary projection is differentiated only where ``grad``.

    Fused log-softmax + gather (cross_entropy) never materialises a second [positions, vocab] tensor.
    """
    out = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device)
    plain = valid & ~grad
    if bool(plain.any()):
        with torch.no_grad():
            out[plain] = -torch.nn.functional.cross_entropy(head(hidden[plain].detach()).float(), targets[plain], reduction="none")
    if bool(grad.any()):
        lp = -torch.nn.functional.cross_entropy(head(hidden[grad]).float(), targets[grad], reduction="none")
        out = out.index_put(tuple(grad.nonzero().T), lp)
    return out

"""Tinker's loss functions, computed locally with Tinker's semantics.

Each loss sees one datum's per-position log-probabilities of its ``target_tokens`` and returns a
scalar that is *summed* over positions (Tinker reports it as ``loss:sum``), so the gradient of a
batch is the sum of its datums' gradients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

# loss name -> the loss_fn_inputs it needs besides target_tokens
LOSS_INPUTS: dict[str, tuple[str, ...]] = {
    "cross_entropy": ("weights",),
    "importance_sampling": ("logprobs", "advantages"),
    "ppo": ("logprobs", "advantages"),
}


def check_loss_name(loss_fn: str) -> None:
    if loss_fn not in LOSS_INPUTS:
        raise ValueError(f"unknown loss_fn {loss_fn!r}; valid: {', '.join(LOSS_INPUTS)}")


def cross_entropy(logprobs: "torch.Tensor", inputs: dict[str, "torch.Tensor"], config: dict) -> "torch.Tensor":
    return -(inputs["weights"] * logprobs).sum()


def importance_sampling(logprobs: "torch.Tensor", inputs: dict[str, "torch.Tensor"], config: dict) -> "torch.Tensor":
    # The ratio corrects for the sampler's policy differing from the learner's (off-policy data).
    import torch

    ratio = torch.exp(logprobs - inputs["logprobs"])
    return -(ratio * inputs["advantages"]).sum()


def ppo(logprobs: "torch.Tensor", inputs: dict[str, "torch.Tensor"], config: dict) -> "torch.Tensor":
    # Tinker's thresholds bound the ratio itself (defaults 0.8 and 1.2), not an epsilon around 1.
    import torch

    low = float(config.get("clip_low_threshold", 0.8))
    high = float(config.get("clip_high_threshold", 1.2))
    ratio = torch.exp(logprobs - inputs["logprobs"])
    advantages = inputs["advantages"]
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, low, high) * advantages
    return -torch.minimum(unclipped, clipped).sum()


LOSSES: dict[str, Callable[..., "torch.Tensor"]] = {
    "cross_entropy": cross_entropy,
    "importance_sampling": importance_sampling,
    "ppo": ppo,
}

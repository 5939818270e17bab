"""Tinker's loss functions, computed locally with Tinker's semantics.

Each loss sees one datum's per-position log-probabilities of its ``target_tokens`` and returns a
scalar that is *summed* over positions (Tinker reports it as ``loss:sum``), so the gradient of a
batch is the sum of its datums' gradients. The formulas follow the SDK's documentation of each
built-in loss (tinker-docs "Loss Functions"); ``logprobs`` in the inputs are the sampler's.
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
    "cispo": ("logprobs", "advantages"),
    "dro": ("logprobs", "advantages"),
    "gspo": ("logprobs", "advantages"),
}

# Losses the Tinker service offers that cannot be computed here. stable_reinforce reads
# stability information the service records at sampling time (sequence_id provenance), and its
# objective is not published, so a local copy could only be a guess.
SERVICE_ONLY = {"stable_reinforce": "it needs the stability info the Tinker service records at sampling time (backend=tinker only)"}

# Tinker's thresholds bound the ratio itself (not an epsilon around 1); per-token values may also
# come as loss_fn_inputs of the same name.
DEFAULT_CLIP = (0.8, 1.2)
DEFAULT_DRO_BETA = 0.05


def check_loss_name(loss_fn: str) -> None:
    if loss_fn in SERVICE_ONLY:
        raise ValueError(f"loss_fn {loss_fn!r} is not available on the local backend: {SERVICE_ONLY[loss_fn]}")
    if loss_fn not in LOSS_INPUTS:
        raise ValueError(f"unknown loss_fn {loss_fn!r}; valid: {', '.join(LOSS_INPUTS)}")


def _thresholds(inputs: dict[str, "torch.Tensor"], config: dict) -> tuple:
    low = inputs.get("clip_low_threshold", float(config.get("clip_low_threshold", DEFAULT_CLIP[0])))
    high = inputs.get("clip_high_threshold", float(config.get("clip_high_threshold", DEFAULT_CLIP[1])))
    return low, high


def _clamp(ratio: "torch.Tensor", low, high) -> "torch.Tensor":
    import torch

    return torch.minimum(torch.maximum(ratio, torch.as_tensor(low, dtype=ratio.dtype)), torch.as_tensor(high, dtype=ratio.dtype))


def _clipped_objective(ratio: "torch.Tensor", advantages: "torch.Tensor", low, high) -> "torch.Tensor":
    import torch

    return torch.minimum(ratio * advantages, _clamp(ratio, low, high) * advantages)


def cross_entropy(logprobs: "torch.Tensor", inputs: dict[str, "torch.Tensor"], config: dict) -> "torch.Tensor":
    return -(inputs["weights"] * logprobs).sum()


def importance_sampling(logprobs: "torch.Tensor", inputs: dict[str, "torch.Tensor"], config: dict) -> "torch.Tensor":
    # The ratio corrects for the sampler's policy differing from the learner's (off-policy data).
    import torch

    ratio = torch.exp(logprobs - inputs["logprobs"])
    return -(ratio * inputs["advantages"]).sum()


def ppo(logprobs: "torch.Tensor", inputs: dict[str, "torch.Tensor"], config: dict) -> "torch.Tensor":
    import torch

    ratio = torch.exp(logprobs - inputs["logprobs"])
    return -_clipped_objective(ratio, inputs["advantages"], *_thresholds(inputs, config)).sum()


def cispo(logprobs: "torch.Tensor", inputs: dict[str, "torch.Tensor"], config: dict) -> "torch.Tensor":
    # The clipped ratio is only a weight (no gradient through it): clipped tokens still get a
    # gradient through their log-probability, unlike PPO, which zeroes them.
    import torch

    ratio = torch.exp(logprobs - inputs["logprobs"])
    weight = _clamp(ratio, *_thresholds(inputs, config)).detach()
    return -(weight * logprobs * inputs["advantages"]).sum()


def dro(logprobs: "torch.Tensor", inputs: dict[str, "torch.Tensor"], config: dict) -> "torch.Tensor":
    beta = float(config.get("beta", DEFAULT_DRO_BETA))
    quadratic = (logprobs - inputs["logprobs"]) ** 2
    return -(logprobs * inputs["advantages"] - 0.5 * beta * quadratic).sum()


def gspo(logprobs: "torch.Tensor", inputs: dict[str, "torch.Tensor"], config: dict) -> "torch.Tensor":
    """GSPO-token: every token carries the sequence's geometric-mean ratio, with its own gradient.

    The sequence is the positions ``sequence_ratio_mask`` marks; without a mask, the positions with
    a nonzero advantage (the completion, in a datum built by tinkerx.methods.shared.rollouts).
    """
    import torch

    mask = inputs.get("sequence_ratio_mask")
    in_ratio = (mask != 0) if mask is not None else (inputs["advantages"] != 0)
    if not bool(in_ratio.any()):
        in_ratio = torch.ones_like(logprobs, dtype=torch.bool)
    log_ratio = (logprobs.detach() - inputs["logprobs"])[in_ratio].mean()
    ratio = torch.exp(log_ratio + logprobs - logprobs.detach())
    return -_clipped_objective(ratio, inputs["advantages"], *_thresholds(inputs, config)).sum()


LOSSES: dict[str, Callable[..., "torch.Tensor"]] = {
    "cross_entropy": cross_entropy,
    "importance_sampling": importance_sampling,
    "ppo": ppo,
    "cispo": cispo,
    "dro": dro,
    "gspo": gspo,
}

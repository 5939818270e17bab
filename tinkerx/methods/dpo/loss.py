"""DPO and its variants as a custom loss over per-token logprobs (``forward_backward_custom``).

Shapes in names: ``_P`` is one value per pair. A pair's sequence logprob is the sum of its
completion tokens' logprobs (the datum's ``weights`` mark them). With ``h`` the margin of the
policy's log-ratio to the frozen reference, chosen minus rejected,

- ``sigmoid`` (DPO):          ``-log sigmoid(beta * h)``
- ``ipo`` (IPO):              ``(h - 1 / (2 * beta))**2``
- ``length_normalized``:      DPO with each log-ratio divided by its completion's token count, so
                              a longer reply is not favoured (or punished) for its length alone.

The loss is the mean over pairs: the learning rate does not have to change with the batch size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    import torch

VARIANTS = ("sigmoid", "ipo", "length_normalized")


def dpo_loss(
    policy_chosen_P: "torch.Tensor",
    policy_rejected_P: "torch.Tensor",
    ref_chosen_P: "torch.Tensor",
    ref_rejected_P: "torch.Tensor",
    beta: float,
    variant: str = "sigmoid",
    chosen_tokens_P: "torch.Tensor | None" = None,
    rejected_tokens_P: "torch.Tensor | None" = None,
) -> "tuple[torch.Tensor, dict[str, float]]":
    import torch

    chosen_ratio_P = policy_chosen_P - ref_chosen_P
    rejected_ratio_P = policy_rejected_P - ref_rejected_P
    if variant == "length_normalized":
        chosen_ratio_P = chosen_ratio_P / chosen_tokens_P
        rejected_ratio_P = rejected_ratio_P / rejected_tokens_P
    margin_P = chosen_ratio_P - rejected_ratio_P
    if variant == "ipo":
        loss = ((margin_P - 1.0 / (2.0 * beta)) ** 2).mean()
    elif variant in ("sigmoid", "length_normalized"):
        loss = -torch.nn.functional.logsigmoid(beta * margin_P).mean()
    else:
        raise ValueError(f"unknown DPO variant {variant!r}; valid: {', '.join(VARIANTS)}")
    with torch.no_grad():
        metrics = {
            "dpo/loss": float(loss),
            "dpo/reward_margin": float(beta * margin_P.mean()),  # the implicit reward of chosen minus rejected
            "dpo/chosen_reward": float(beta * chosen_ratio_P.mean()),
            "dpo/rejected_reward": float(beta * rejected_ratio_P.mean()),
            "dpo/accuracy": preference_accuracy(margin_P),
            "dpo/chosen_logprob": float(policy_chosen_P.mean()),
            "dpo/rejected_logprob": float(policy_rejected_P.mean()),
        }
    return loss, metrics


TIE = 1e-4  # |margin| below this is a tie: the reference's logprobs come from another forward pass (unpadded)


def preference_accuracy(margin_P: "torch.Tensor") -> float:
    """Share of pairs whose chosen reply gained on the rejected one; a tie (e.g. at the start) counts half."""
    return float(((margin_P > TIE).float() + 0.5 * (margin_P.abs() <= TIE).float()).mean())


def sequence_logprobs(data: Sequence[Any], logprobs_list: Sequence["torch.Tensor"]) -> "torch.Tensor":
    """Each datum's completion logprob: the sum of its logprobs where ``weights`` is 1."""
    import torch

    return torch.stack([(d.loss_fn_inputs["weights"].to_torch().to(lp) * lp).sum() for d, lp in zip(data, logprobs_list)])


def dpo_loss_fn(ref_chosen_P: Sequence[float], ref_rejected_P: Sequence[float], chosen_tokens_P: Sequence[int],
                rejected_tokens_P: Sequence[int], beta: float, variant: str) -> Callable[..., Any]:  # fmt: skip
    """``fn(data, logprobs_list) -> (loss, metrics)`` for ``forward_backward_custom`` on datums laid out
    chosen, rejected, chosen, rejected, ... (see ``pair_datums``)."""
    import torch

    refs = [torch.tensor(list(x), dtype=torch.float32) for x in (ref_chosen_P, ref_rejected_P, chosen_tokens_P, rejected_tokens_P)]

    def loss_fn(data: Sequence[Any], logprobs_list: Sequence["torch.Tensor"]):
        sequence_D = sequence_logprobs(data, logprobs_list)
        return dpo_loss(sequence_D[0::2], sequence_D[1::2], refs[0], refs[1], beta, variant, refs[2], refs[3])

    return loss_fn

"""From scored groups to the datums and loss of one RL step, as a recipe's switches say.

Tinker's RL losses *sum* per-token terms, and each is linear in the advantage (for a positive
scale, min(r·cA, clip(r)·cA) = c·min(r·A, clip(r)·A)). So every aggregation of the papers is a
per-token scale folded into the advantages, and the KL penalty a per-token term added to them: the
same datums train identically on the local backend and on the Tinker service.

Aggregations (``_N`` = one value per trained sequence, ``L_i`` its completion length):
  sum            each token counts 1 (tinkerx's plain recipe)
  sequence_mean  mean over a sequence's tokens, then over sequences: 1 / (L_i · N)      (GRPO)
  token_mean     mean over every token of the batch: 1 / Σ L_i                           (DAPO)
  constant       a constant normaliser: 1 / (N · max_tokens)                             (Dr. GRPO)
"""

from __future__ import annotations

from typing import Any, Sequence

from tinkerx.methods.grpo.variants import RLRecipe
from tinkerx.methods.shared.advantages import SIGNAL
from tinkerx.methods.shared.rollouts import Group, Sample, rl_datum


def sequence_scales(aggregation: str, lengths_N: Sequence[int], max_tokens: int) -> list[float]:
    n = len(lengths_N)
    if aggregation == "sum":
        return [1.0] * n
    if aggregation == "sequence_mean":
        return [1.0 / (max(length, 1) * n) for length in lengths_N]
    if aggregation == "token_mean":
        total = max(sum(lengths_N), 1)
        return [1.0 / total] * n
    if aggregation == "constant":
        return [1.0 / (n * max_tokens)] * n
    raise ValueError(f"unknown aggregation {aggregation!r}")


def trainable(groups: Sequence[Group], recipe: RLRecipe) -> list[tuple[Group, Sample]]:
    """The samples a step trains on: those of groups with signal, minus truncated ones when filtered."""
    keep_truncated = recipe.overlong != "filter"
    return [(g, s) for g in groups if g.kind == SIGNAL for s in g.samples if keep_truncated or s.stop_reason != "length"]


def reference_logprobs(reference_client: Any, trained: Sequence[tuple[Group, Sample]]) -> list[list[float]]:
    """The frozen base model's logprobs of each sampled completion (all requests in flight at once)."""
    from tinker import types

    futures = [reference_client.compute_logprobs(types.ModelInput.from_ints(list(g.prompt_T) + s.tokens_T)) for g, s in trained]
    return [[float(x) for x in f.result()[len(g.prompt_T) :]] for f, (g, _) in zip(futures, trained)]


def token_advantages(
    sample: Sample, scale: float, kl_coef: float = 0.0, reference_T: Sequence[float] | None = None
) -> list[float]:
    """``scale · (A - kl_coef · (log q(t) - log ref(t)))`` per completion token.

    The KL term is the per-token k1 estimate of KL(policy || base) on the sampled tokens, paid as a
    reward: tokens the policy now likes more than the base did are pushed back toward it.
    """
    if kl_coef and reference_T is not None:
        advantages_T = [scale * (sample.advantage - kl_coef * (q - r)) for q, r in zip(sample.logprobs_T, reference_T)]
    else:
        advantages_T = [scale * sample.advantage] * len(sample.tokens_T)
    # A multi-turn episode's environment tokens were not sampled by the policy: no loss on them.
    return advantages_T if sample.mask_T is None else [a * m for a, m in zip(advantages_T, sample.mask_T)]


def policy_datums(
    trained: Sequence[tuple[Group, Sample]], recipe: RLRecipe, max_tokens: int, reference_T: Sequence[Sequence[float]] | None = None
) -> list[Any]:
    scales_N = sequence_scales(recipe.aggregation, [s.policy_tokens for _, s in trained], max_tokens)
    refs = reference_T if reference_T is not None else [None] * len(trained)
    return [
        rl_datum(g.prompt_T, s, token_advantages(s, scale, recipe.kl_coef, ref), ratio_mask=recipe.loss_fn == "gspo")
        for (g, s), scale, ref in zip(trained, scales_N, refs)
    ]


def kl_to_reference(trained: Sequence[tuple[Group, Sample]], reference_T: Sequence[Sequence[float]]) -> float:
    """Mean per-token (log q - log ref) over the trained completions: the KL the penalty pays for."""
    diffs = [q - r for (_, s), ref in zip(trained, reference_T) for q, r, m in zip(s.logprobs_T, ref, s.mask_T or [1.0] * len(ref)) if m]
    return sum(diffs) / len(diffs) if diffs else 0.0

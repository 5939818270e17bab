"""On-policy distillation's per-token advantages: the teacher's judgement of each token the student sampled.

Shapes in names: ``_T`` is one value per completion token.
"""

from __future__ import annotations

from typing import Sequence


def reverse_kl_advantages(student_T: Sequence[float], teacher_T: Sequence[float], kl_coef: float = 1.0, discount: float = 0.0,
                          clip: float | None = None) -> list[float]:  # fmt: skip
    """``kl_coef * (teacher - student)`` per token, plus ``discount``-weighted later tokens' values.

    ``student - teacher`` on a token the student sampled is a one-sample estimate of the reverse KL
    ``KL(student || teacher)`` at that position, so pushing each token up by minus that estimate
    (with the importance-sampling loss) descends the reverse KL. ``discount=0`` scores every token
    on its own (the usual choice); ``discount>0`` also credits a token with the teacher's view of
    what followed it, as a return.

    ``clip`` bounds each token's value to ``[-clip, clip]`` before discounting. A confident teacher
    gives a token it would never say a logprob of -10 to -20, so a few wrong tokens outweigh every
    right one (measured on the tiny demo: negative values summed to 10x the positive ones) and the
    step mostly reshuffles mass among wrong tokens; clipping keeps "lower this" from drowning
    "raise that". ``None`` keeps the plain, unbiased estimate.
    """
    rewards_T = [kl_coef * (t - s) for s, t in zip(student_T, teacher_T, strict=True)]
    if clip is not None:
        rewards_T = [min(max(r, -clip), clip) for r in rewards_T]
    advantages_T = [0.0] * len(rewards_T)
    running = 0.0
    for i in range(len(rewards_T) - 1, -1, -1):
        running = rewards_T[i] + discount * running
        advantages_T[i] = running
    return advantages_T


def token_advantage_datum(prompt_T: Sequence[int], tokens_T: Sequence[int], logprobs_T: Sequence[float], advantages_T: Sequence[float]):
    """A Datum for ``importance_sampling`` with one advantage per completion token (prompt positions 0)."""
    from tinker import types

    all_T = list(prompt_T) + list(tokens_T)
    n_prompt = len(prompt_T) - 1  # target positions that are still prompt tokens
    return types.Datum(
        model_input=types.ModelInput.from_ints(all_T[:-1]),
        loss_fn_inputs={
            "target_tokens": all_T[1:],
            "logprobs": [0.0] * n_prompt + list(logprobs_T),
            "advantages": [0.0] * n_prompt + list(advantages_T),
        },
    )

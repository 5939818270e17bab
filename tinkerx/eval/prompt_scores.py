"""Prompt scoring as log-likelihood harnesses need it: each token's logprob and its position's top-k.

One function serves both the in-process lm-eval adapter and the server's ``/v1/completions`` (echo
with logprobs), so the two paths give the same numbers for the same checkpoint: every prompt is
scored by a forward of its own, whatever else is in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass
class PromptScores:
    tokens: list[int]
    logprobs: list[float | None]                      # per token; the first has no context: None
    top: list[list[tuple[int, float]] | None] | None  # per token, the k likeliest (token, logprob); None: not offered


def score_prompts(client: Any, token_lists: Sequence[Sequence[int]], top_k: int = 1) -> list[PromptScores]:
    """Logprobs (and, where the client computes them, the top-``top_k`` alternatives) of each prompt.

    The local backend scores a whole batch in one request; a Tinker sampling client gets one
    ``compute_logprobs`` per prompt, all in flight at once, and no alternatives (``top`` is None:
    callers that need the greedy token find it another way).
    """
    from tinker import types

    token_lists = [list(t) for t in token_lists]
    if not token_lists:
        return []
    inputs = [types.ModelInput.from_ints(t) for t in token_lists]
    topk = getattr(client, "compute_topk_logprobs_many", None)
    if topk is not None and top_k > 0:
        rows = topk(inputs, top_k).result()
        return [PromptScores(t, lp, top) for t, (lp, top) in zip(token_lists, rows)]
    from tinkerx.sampler import compute_logprobs_all

    futures = compute_logprobs_all(client, token_lists)
    return [PromptScores(t, list(f.result()), None) for t, f in zip(token_lists, futures)]

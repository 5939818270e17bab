"""Held-out per-token NLL and perplexity of conversations: the number chat SFT runs are compared by.

Each held-out conversation is rendered as for training (``tinkerx.conversation``) and scored with
the sampling client's ``compute_logprobs``; the NLL is averaged over the tokens that would carry loss
(the assistant replies and their end-of-turn tokens, per ``dataset.train_on``), pooled over all
conversations, so a long reply weighs as its tokens do. A conversation longer than the run's token
limit (``model.context_length`` or ``dataset.max_length``) is left out and counted (``nll_skipped``). A client that cannot score tokens (an
OpenAI-compatible endpoint) gives no NLL: the run says so once and reports the sampled replies.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from tinkerx.conversation import render_conversation
from tinkerx.sampler import compute_logprobs_all

log = logging.getLogger(__name__)


def conversation_nll(sampling_client: Any, tokenizer: Any, dataset: Any, examples: Sequence[Any]) -> dict[str, float]:
    if not examples:
        return {}
    if not hasattr(sampling_client, "compute_logprobs"):
        log.warning("this backend's sampling client cannot score tokens: no held-out nll/perplexity, only sampled replies")
        return {}
    rendered = [render_conversation(tokenizer, dataset.conversation(ex), dataset.train_on) for ex in examples]
    limit = getattr(dataset, "token_limit", None)  # set by tinkerx.data.lengths: the model cannot score past its context
    skipped = sum(limit is not None and len(r.tokens) > limit for r in rendered)
    rendered = [r for r in rendered if limit is None or len(r.tokens) <= limit]
    if not rendered:
        log.warning("every held-out conversation is longer than %s tokens: no nll", limit)
        return {"nll_skipped": float(skipped)}
    futures = compute_logprobs_all(sampling_client, [r.tokens for r in rendered])
    total = weight = 0.0
    for r, future in zip(rendered, futures):
        for logprob, w in zip(future.result(), r.weights):  # logprobs[i] is token i's, given tokens[:i]
            if w:
                total -= float(logprob) * w
                weight += w
    nll = total / weight
    return {"nll": nll, "perplexity": math.exp(min(nll, 50.0)), "nll_tokens": weight, **({"nll_skipped": float(skipped)} if skipped else {})}

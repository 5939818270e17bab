"""``/v1/completions`` as evaluation harnesses send it, and the tokenizer routes they probe.

lm-evaluation-harness (``--model local-completions``) scores a continuation by sending the context
and continuation as one prompt with ``echo: true, logprobs: 1, max_tokens: 1`` and reading the
prompt tokens' logprobs back; it batches prompts (a list of strings or of token-id lists) and may ask
for ``max_tokens: 0``. With ``logprobs`` set, every returned logprob (prompt and completion) comes
from one scoring forward of the whole sequence (``tinkerx.eval.prompt_scores``), the same numbers the
in-process adapter computes, and ``top_logprobs`` holds the k likeliest tokens of each position.

``/tokenizer_info``, ``/tokenize`` and ``/detokenize`` follow vLLM's shapes: lm-eval detects them and
then tokenizes with the served model's own tokenizer (no tokenizer download, no ``tokenizer=`` arg).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_TOP_LOGPROBS = 20  # OpenAI's legacy completions allow 5; vLLM 20


class RequestError(ValueError):
    """A completions request that cannot be served as sent (a one-line 400)."""


@dataclass
class CompletionRequest:
    prompts: list[list[int]]
    echo: bool
    top_k: int | None  # `logprobs`: None = no logprobs; k = the k likeliest tokens of each position
    max_tokens: int    # 0: score only (echo), no sampling
    n: int


def parse_request(body: dict, tokenizer: Any, default_max_tokens: int, context_length: int | None) -> CompletionRequest:
    prompts = _prompts(body.get("prompt"), tokenizer)
    echo = bool(body.get("echo"))
    top_k = body.get("logprobs")
    if top_k is True:  # the chat API's boolean, sent to this route by some clients
        top_k = 1
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or not 0 <= top_k <= MAX_TOP_LOGPROBS):
        raise RequestError(f"logprobs must be an integer 0..{MAX_TOP_LOGPROBS} (the top tokens returned per position), got {top_k!r}")
    raw = body.get("max_tokens")
    max_tokens = default_max_tokens if raw is None else raw
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise RequestError(f"max_tokens must be an integer >= 0 (0: score the prompt only, with echo), got {raw!r}")
    n = body.get("n") or 1
    if not isinstance(n, int) or n < 1:
        raise RequestError(f"n must be a positive integer, got {n!r}")
    if body.get("stream") and (echo or len(prompts) > 1 or max_tokens == 0):
        raise RequestError("stream is served for one prompt with max_tokens >= 1 and no echo; send echo, batches and max_tokens 0 without stream")
    for i, tokens in enumerate(prompts):
        if context_length is not None and len(tokens) + max_tokens > context_length:
            raise RequestError(
                f"prompt {i} ({len(tokens)} tokens) + max_tokens ({max_tokens}) exceeds the model's context of {context_length} tokens; "
                "left-truncate the prompt (lm-eval does so given max_length)"
            )
    return CompletionRequest(prompts, echo, top_k, max_tokens, n)


def _prompts(prompt: Any, tokenizer: Any) -> list[list[int]]:
    """A string, a list of strings, a token-id list, or a list of token-id lists -> token lists."""
    if isinstance(prompt, str):
        items: list[Any] = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        items = [prompt]
    elif isinstance(prompt, list) and prompt:
        items = prompt
    else:
        raise RequestError("prompt must be a string, a list of strings, a list of token ids, or a list of token-id lists")
    vocab = len(tokenizer)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            tokens = tokenizer.encode(item, add_special_tokens=False)
        elif isinstance(item, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
            tokens = list(item)
            if any(not 0 <= t < vocab for t in tokens):
                raise RequestError(f"prompt {i} has a token id outside the vocabulary [0, {vocab})")
        else:
            raise RequestError(f"prompt {i} must be a string or a list of token ids, got {type(item).__name__}")
        if not tokens:
            raise RequestError(f"prompt {i} is empty: give at least one token")
        out.append(tokens)
    return out


def logprobs_field(tokenizer: Any, tokens: list[int], logprobs: list[float | None], top: list | None, start: int, top_k: int) -> dict:
    """OpenAI's legacy ``logprobs`` object for ``tokens[start:]`` (start 0: the prompt echoed too).

    The first token of a sequence has no context, so its logprob and top_logprobs are None, as in
    OpenAI's and vLLM's echo replies."""
    pieces = [tokenizer.decode([t]) for t in tokens]
    offsets, at = [], 0
    for piece in pieces:
        offsets.append(at)
        at += len(piece)
    tops: list[dict[str, float] | None] = []
    for k in range(start, len(tokens)):
        if top is None or top[k] is None or top_k == 0:
            tops.append(None if (top is None or top[k] is None) else {})
            continue
        alternatives: dict[str, float] = {}
        for token_id, lp in top[k][:top_k]:  # likeliest first: a shared text keeps the larger logprob
            alternatives.setdefault(tokenizer.decode([token_id]), lp)
        tops.append(alternatives)
    return {"tokens": pieces[start:], "token_logprobs": logprobs[start:], "top_logprobs": tops, "text_offset": offsets[start:]}


def tokenizer_info(tokenizer: Any) -> dict:
    return {
        "eos_token": tokenizer.eos_token,
        "bos_token": tokenizer.bos_token,
        "pad_token": tokenizer.pad_token,
        "model_max_length": getattr(tokenizer, "model_max_length", None),
        "tokenizer_class": type(tokenizer).__name__,
    }


def tokenize(tokenizer: Any, body: dict) -> dict:
    text = body.get("prompt")
    if not isinstance(text, str):
        raise RequestError("prompt must be a string")
    tokens = tokenizer.encode(text, add_special_tokens=bool(body.get("add_special_tokens", False)))
    return {"tokens": tokens, "count": len(tokens), "max_model_len": getattr(tokenizer, "model_max_length", None)}


def detokenize(tokenizer: Any, body: dict) -> dict:
    tokens = body.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        raise RequestError("tokens must be a list of token ids")
    return {"prompt": tokenizer.decode(tokens)}

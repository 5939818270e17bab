"""Issuing many sampling requests at once, on any backend.

Against the service every prompt is its own request, all in flight together; the local backend's
clients also offer ``sample_many``, which decodes the same prompts as one batch (much faster on a
CPU or a single GPU). Methods call ``sample_prompts`` and never need to know which they have.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Sequence


def sample_prompts(sampling_client: Any, prompts: Sequence[Sequence[int]], num_samples: int, params: Any) -> list["Future[Any]"]:
    from tinker import types

    inputs = [types.ModelInput.from_ints(list(p)) for p in prompts]
    batched = getattr(sampling_client, "sample_many", None)
    if batched is not None:
        return batched(inputs, num_samples, params)
    return [sampling_client.sample(prompt=i, num_samples=num_samples, sampling_params=params) for i in inputs]


def compute_logprobs_all(sampling_client: Any, prompts: Sequence[Sequence[int]]) -> list[Any]:
    """``compute_logprobs`` of every prompt, all in flight at once; a client offering
    ``compute_logprobs_many`` (the local backend) takes them as one request and shares forwards."""
    from tinker import types

    inputs = [types.ModelInput.from_ints(list(p)) for p in prompts]
    batched = getattr(sampling_client, "compute_logprobs_many", None)
    if batched is not None:
        return batched(inputs)
    return [sampling_client.compute_logprobs(i) for i in inputs]


@dataclass
class TextSample:
    """One completion as text: what an evaluator grades, from a token backend or a chat endpoint."""

    text: str
    num_tokens: int
    stop_reason: str              # "stop" | "length"
    error: str | None = None      # the request failed (an endpoint's 5xx, malformed reply, ...)


def sample_chats(sampling_client: Any, tokenizer: Any, messages: Sequence[Any], num_samples: int, params: Any) -> list["Future[list[TextSample]]"]:
    """``num_samples`` completions of each conversation, all in flight at once.

    A client that takes messages itself (an HTTP chat endpoint: the server applies the chat
    template) offers ``sample_chats``; any other client gets the tokens of the template here.
    """
    direct = getattr(sampling_client, "sample_chats", None)
    if direct is not None:
        return direct(messages, num_samples, params)
    from tinkerx.chat import decode_completion, prompt_tokens

    futures = sample_prompts(sampling_client, [prompt_tokens(tokenizer, m) for m in messages], num_samples, params)

    def as_text(response: Any) -> list[TextSample]:
        return [TextSample(decode_completion(tokenizer, s.tokens), len(s.tokens), s.stop_reason) for s in response.sequences]

    return [_Mapped(f, as_text) for f in futures]


class _Mapped:
    """``fn`` applied to a future's result when it is asked for: works on any future with ``result()``
    (the SDK's own futures are not ``concurrent.futures.Future``)."""

    def __init__(self, future: Any, fn: Any) -> None:
        self._future, self._fn = future, fn

    def result(self, timeout: float | None = None) -> Any:
        return self._fn(self._future.result(timeout) if timeout is not None else self._future.result())

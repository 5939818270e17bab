"""Issuing many sampling requests at once, on any backend.

Against the service every prompt is its own request, all in flight together; the local backend's
clients also offer ``sample_many``, which decodes the same prompts as one batch (much faster on a
CPU or a single GPU). Methods call ``sample_prompts`` and never need to know which they have.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Sequence


def prompt_seeds(seed: int | None, count: int) -> list[int] | None:
    """One seed per prompt, derived from a run's fixed ``seed`` (None: none, the backend's own stream).

    One seed shared by every prompt gives every prompt the same random draws: sample k of each
    prompt is drawn with the same numbers, so the samples of different prompts move together (every
    task's group of 8 holds its rare answer in the same slot) and an average over prompts is far
    noisier than its count says. Derived by prompt index, so a rerun -- and the baseline and final
    evaluation of one run -- draw the same numbers for the same prompt."""
    if seed is None:
        return None
    return [int.from_bytes(hashlib.blake2b(f"{seed}/{i}".encode(), digest_size=4).digest(), "little") for i in range(count)]


def params_per_prompt(params: Any, count: int, seeds: Sequence[int] | None) -> list[Any]:
    """``params`` for each of ``count`` prompts, each with its own seed where ``seeds`` are given."""
    return [params] * count if seeds is None else [params.model_copy(update={"seed": s}) for s in seeds]


def sample_prompts(sampling_client: Any, prompts: Sequence[Sequence[int]], num_samples: int, params: Any,
                   seeds: Sequence[int] | None = None) -> list["Future[Any]"]:  # fmt: skip
    """``num_samples`` completions of each prompt, all in flight; ``seeds`` (one per prompt, see
    ``prompt_seeds``) replace ``params.seed`` prompt by prompt."""
    from tinker import types

    inputs = [types.ModelInput.from_ints(list(p)) for p in prompts]
    if seeds is not None and len(seeds) != len(inputs):
        raise ValueError(f"{len(inputs)} prompts need as many seeds, got {len(seeds)}")
    batched = getattr(sampling_client, "sample_many", None)
    if batched is not None:
        return batched(inputs, num_samples, params) if seeds is None else batched(inputs, num_samples, params, seeds=list(seeds))
    per_prompt = params_per_prompt(params, len(inputs), seeds)
    return [sampling_client.sample(prompt=i, num_samples=num_samples, sampling_params=q) for i, q in zip(inputs, per_prompt)]


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


def sample_chats(sampling_client: Any, tokenizer: Any, messages: Sequence[Any], num_samples: int, params: Any,
                 seeds: Sequence[int] | None = None) -> list["Future[list[TextSample]]"]:  # fmt: skip
    """``num_samples`` completions of each conversation, all in flight at once (``seeds``: one per
    conversation, as ``sample_prompts``).

    A client that takes messages itself (an HTTP chat endpoint: the server applies the chat
    template) offers ``sample_chats``; any other client gets the tokens of the template here.
    """
    direct = getattr(sampling_client, "sample_chats", None)
    if direct is not None:
        return direct(messages, num_samples, params) if seeds is None else direct(messages, num_samples, params, seeds=list(seeds))
    from tinkerx.chat import decode_completion, prompt_tokens

    futures = sample_prompts(sampling_client, [prompt_tokens(tokenizer, m) for m in messages], num_samples, params, seeds)

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

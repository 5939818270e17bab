"""Thin wrappers around the service, training and sampling clients that count every token sent.

They have the shape of the clients they wrap (the tinker SDK's, the local backend's, an endpoint's):
every call goes through unchanged and returns what the wrapped client returns, so method code never
knows it is metered. A call that moves tokens adds them to the ``UsageMeter``; an optional method
the wrapped client lacks (``sample_many`` on the SDK's client) stays absent, so code that asks
``getattr(client, "sample_many", None)`` still gets None.

Sampled tokens are counted when their future's ``result()`` is first read: the step that uses a
rollout pays for it, the same on every run of a seeded local job.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from tinkerx.runs.usage import UsageMeter


class _Wrapper:
    """Delegates every attribute it does not define to the wrapped client."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _CountedFuture(_Wrapper):
    """A future whose ``result()`` is passed through ``on_result`` once (to count it, or wrap it)."""

    def __init__(self, inner: Any, on_result: Callable[[Any], Any]) -> None:
        super().__init__(inner)
        self._on_result, self._lock, self._value, self._done = on_result, threading.Lock(), None, False

    def result(self, timeout: float | None = None) -> Any:
        value = self._inner.result(timeout) if timeout is not None else self._inner.result()
        with self._lock:
            if not self._done:
                self._value, self._done = self._on_result(value), True
        return self._value


def _datum_tokens(data: Any) -> int:
    return sum(d.model_input.length for d in data)


class MeteredService(_Wrapper):
    """The run's service client; ``meter`` holds what it and its clients spent."""

    def __init__(self, inner: Any, meter: UsageMeter) -> None:
        super().__init__(inner)
        self.meter = meter

    def _training(self, future: Any, model: str | None) -> _CountedFuture:
        return _CountedFuture(future, lambda client: MeteredTrainingClient(client, self.meter, model))

    def create_lora_training_client(self, *args: Any, **kwargs: Any) -> Any:
        model = kwargs.get("base_model", args[0] if args else None)
        return self._training(self._inner.create_lora_training_client(*args, **kwargs), model)

    def create_training_client_from_state(self, *args: Any, **kwargs: Any) -> Any:
        return self._training(self._inner.create_training_client_from_state(*args, **kwargs), None)

    def create_training_client_from_state_with_optimizer(self, *args: Any, **kwargs: Any) -> Any:
        return self._training(self._inner.create_training_client_from_state_with_optimizer(*args, **kwargs), None)

    def create_sampling_client(self, *args: Any, **kwargs: Any) -> Any:
        # A base model's (or a saved sampler's) frozen weights: a judge, a teacher, a reference.
        return MeteredSamplingClient(self._inner.create_sampling_client(*args, **kwargs), self.meter, kwargs.get("base_model"), frozen=True)


class MeteredTrainingClient(_Wrapper):
    def __init__(self, inner: Any, meter: UsageMeter, model: str | None) -> None:
        super().__init__(inner)
        self.meter, self.model = meter, model

    def forward_backward(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        self.meter.add("train", _datum_tokens(data), self.model)
        return self._inner.forward_backward(data, *args, **kwargs)

    def forward_backward_custom(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        self.meter.add("train", _datum_tokens(data), self.model)
        return self._inner.forward_backward_custom(data, *args, **kwargs)

    def forward(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        # No gradient: a forward pass over the tokens, counted as prefill.
        self.meter.add("prefill", _datum_tokens(data), self.model)
        return self._inner.forward(data, *args, **kwargs)

    def _sampler(self, client: Any) -> "MeteredSamplingClient":
        return MeteredSamplingClient(client, self.meter, self.model, frozen=False)

    def save_weights_and_get_sampling_client(self, *args: Any, **kwargs: Any) -> Any:
        return self._sampler(self._inner.save_weights_and_get_sampling_client(*args, **kwargs))

    def create_sampling_client(self, *args: Any, **kwargs: Any) -> Any:
        return self._sampler(self._inner.create_sampling_client(*args, **kwargs))

    def create_sampling_client_now(self) -> Any:  # the local backend's
        return self._sampler(self._inner.create_sampling_client_now())


class MeteredSamplingClient(_Wrapper):
    """A sampling client, or the future of one (the SDK's): ``result()`` gives the metered client."""

    _COUNTED = ("sample_many", "compute_logprobs_many")  # offered only where the wrapped client has them

    def __init__(self, inner: Any, meter: UsageMeter, model: str | None, frozen: bool) -> None:
        super().__init__(inner)
        self.meter, self.model, self.frozen = meter, model, frozen

    def result(self, timeout: float | None = None) -> "MeteredSamplingClient":
        resolve = getattr(self._inner, "result", None)
        if not callable(resolve):  # an endpoint's client is itself, not a future
            return self
        client = resolve(timeout) if timeout is not None else resolve()
        return self if client is self._inner else MeteredSamplingClient(client, self.meter, self.model, self.frozen)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)  # AttributeError where the wrapped client lacks it
        if name == "sample_many":
            return self._sample_many
        if name == "compute_logprobs_many":
            return self._compute_logprobs_many
        if name == "compute_logprobs":  # here, not a method: hasattr() must stay False where the client cannot score
            return self._compute_logprobs
        return attr

    def _add(self, kind: str, tokens: int) -> None:
        self.meter.add(kind, tokens, self.model, self.frozen)

    def _count_sampled(self, response: Any) -> Any:
        self._add("sample", sum(len(s.tokens) for s in response.sequences))
        return response

    def sample(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        self._add("prefill", prompt.length)
        return _CountedFuture(self._inner.sample(prompt, *args, **kwargs), self._count_sampled)

    def _sample_many(self, prompts: Any, *args: Any, **kwargs: Any) -> list[Any]:
        self._add("prefill", sum(p.length for p in prompts))
        return [_CountedFuture(f, self._count_sampled) for f in self._inner.sample_many(prompts, *args, **kwargs)]

    def _compute_logprobs(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        self._add("prefill", prompt.length)
        return self._inner.compute_logprobs(prompt, *args, **kwargs)

    def _compute_logprobs_many(self, prompts: Any, *args: Any, **kwargs: Any) -> list[Any]:
        # Counted as the separate requests the service would get (the local backend shares forwards).
        self._add("prefill", sum(p.length for p in prompts))
        return self._inner.compute_logprobs_many(prompts, *args, **kwargs)

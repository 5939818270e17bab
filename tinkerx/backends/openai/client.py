"""The endpoint as a sampling client: conversations in, ``TextSample``s out.

Every completion is one HTTP request, at most ``concurrency`` in flight. The ``openai`` client does
the retrying (exponential backoff with jitter, ``Retry-After`` honoured) on 408/409/429/5xx,
timeouts and dropped connections; a request that still fails, or whose reply is not a completion,
becomes a ``TextSample`` with ``error`` set, so the evaluator counts it and scores the rest.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Sequence

from tinkerx.errors import UserError
from tinkerx.sampler import TextSample, params_per_prompt


def make_client(base_url: str, api_key: str | None, timeout_s: float, max_retries: int, concurrency: int) -> tuple[Any, "_AttemptCounter"]:
    """An ``openai.OpenAI`` client, and the counter of every HTTP response it gets."""
    import httpx
    import openai

    counter = _AttemptCounter()
    http = httpx.Client(
        limits=httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2),
        event_hooks={"response": [counter]},
    )
    # Local servers (ollama, llama.cpp, tinkerx.serve) want no key, but the client insists on one.
    client = openai.OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=max_retries, http_client=http)
    return client, counter


class _AttemptCounter:
    """Counts HTTP responses by status, retries included."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, response: Any) -> None:
        with self._lock:
            key = str(response.status_code)
            self.by_status[key] = self.by_status.get(key, 0) + 1


def list_models(client: Any, base_url: str, timeout_s: float) -> list[str] | None:
    """The ids ``/models`` offers; None when the server has no such list. Unreachable: one line."""
    import openai

    try:
        page = client.with_options(max_retries=0, timeout=timeout_s).models.list()
        return [m.id for m in page.data]
    except openai.APITimeoutError:  # before APIConnectionError: it is one
        raise UserError(f"backend.base_url: no answer from {base_url} within {timeout_s:g}s (backend.timeout_s)") from None
    except openai.APIConnectionError as e:
        raise UserError(f"backend.base_url: cannot reach {base_url} ({_cause(e)})") from None
    except openai.AuthenticationError:
        raise UserError(f"backend.base_url: {base_url} refused the API key (401); set the variable named by backend.api_key_env") from None
    except (openai.NotFoundError, openai.APIResponseValidationError, ValueError, TypeError, AttributeError):
        return None


def model_answers(client: Any, model: str, timeout_s: float) -> bool:
    """False when the server answers a 1-token request for ``model`` with 404 (it does not serve it)."""
    import openai

    try:
        client.with_options(max_retries=0, timeout=timeout_s).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
    except openai.NotFoundError:
        return False
    except openai.OpenAIError:  # any other failure is the evaluation's to count, request by request
        pass
    return True


def _cause(e: BaseException) -> str:
    inner = e.__cause__ or e.__context__
    return str(inner or e).splitlines()[0] if str(inner or e) else type(inner or e).__name__


class EndpointService:
    """Shaped like the other backends' service clients, for what an evaluation needs."""

    def __init__(self, client: Any, attempts: _AttemptCounter, model: str, api: str, concurrency: int, tokenizer: Any = None) -> None:
        self.client, self.attempts, self.model, self.api, self.tokenizer = client, attempts, model, api, tokenizer
        self.served_model = model  # what the run reports as its model
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tinkerx-endpoint")
        self._lock = threading.Lock()
        self._usage = {"requests": 0, "failed_requests": 0, "prompt_tokens": 0, "completion_tokens": 0}

    def create_sampling_client(self, base_model: str | None = None, model_path: str | None = None, **_: Any) -> "EndpointSamplingClient":
        if model_path is not None:
            raise _cannot("load checkpoints")
        return EndpointSamplingClient(self, base_model or self.model)

    def create_lora_training_client(self, *_: Any, **__: Any) -> Any:
        raise _cannot("train")

    def create_training_client_from_state(self, *_: Any, **__: Any) -> Any:
        raise _cannot("load checkpoints")

    def submit(self, fn: Any) -> "Future[Any]":
        return self._executor.submit(fn)

    def count(self, failed: bool, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        with self._lock:
            self._usage["requests"] += 1
            self._usage["failed_requests"] += int(failed)
            self._usage["prompt_tokens"] += prompt_tokens
            self._usage["completion_tokens"] += completion_tokens

    def usage(self) -> dict[str, Any]:
        with self._lock:
            return {**self._usage, "http_responses_by_status": dict(self.attempts.by_status)}

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.client.close()


def _cannot(what: str) -> UserError:
    return UserError(
        f"backend=openai cannot {what}: an endpoint only samples (method=eval). To evaluate a checkpoint, serve it "
        "(python -m tinkerx.serve model=NAME server.checkpoint=PATH) and point backend.base_url at that server"
    )


class EndpointSamplingClient:
    def __init__(self, service: EndpointService, model: str) -> None:
        self.service, self.model = service, model

    def sample_chats(self, conversations: Sequence[Sequence[dict[str, str]]], num_samples: int, params: Any,
                     seeds: Sequence[int] | None = None) -> list[Any]:  # fmt: skip
        """One future per conversation, each with ``num_samples`` completions (one request each);
        ``seeds``: one per conversation, in place of ``params.seed``."""
        per_conversation = params_per_prompt(params, len(conversations), seeds)
        return [_AllOf([self.service.submit(lambda m=list(m), i=i, q=q: self._complete(m, i, q)) for i in range(num_samples)])
                for m, q in zip(conversations, per_conversation)]  # fmt: skip

    def _complete(self, messages: list[dict[str, str]], sample_index: int, params: Any) -> TextSample:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": params.max_tokens, "temperature": params.temperature}
        if params.top_p is not None and params.top_p < 1.0:
            kwargs["top_p"] = params.top_p
        if params.seed is not None:  # each sample its own seed, or sampled completions would all be equal
            kwargs["seed"] = params.seed + sample_index
        stop = [params.stop] if isinstance(params.stop, str) else [s for s in params.stop or [] if isinstance(s, str)]
        if stop:
            kwargs["stop"] = stop
        try:
            if self.service.api == "chat":
                reply = self.service.client.chat.completions.create(messages=messages, **kwargs)
                choice = reply.choices[0]
                text = choice.message.content or ""
            else:
                prompt = self.service.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                reply = self.service.client.completions.create(prompt=prompt, **kwargs)
                choice = reply.choices[0]
                text = choice.text or ""
            usage = reply.usage
            prompt_tokens, completion_tokens = (usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else (0, 0)
            stop_reason = "length" if choice.finish_reason == "length" else "stop"
        # What an endpoint can do wrong: an error status after the retries, a reply that is not JSON or
        # not a completion (no choices, wrong types). Anything else is a bug here and propagates.
        except (openai.OpenAIError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            self.service.count(failed=True)
            return TextSample("", 0, "stop", error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])
        self.service.count(failed=False, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return TextSample(text, completion_tokens, stop_reason)

    def get_base_model(self) -> str:
        return self.model


class _AllOf:
    """The results of several futures, as one future's ``result()``."""

    def __init__(self, futures: list["Future[TextSample]"]) -> None:
        self._futures = futures

    def result(self, timeout: float | None = None) -> list[TextSample]:
        return [f.result(timeout) for f in self._futures]

"""OpenAI-compatible routes: ``/v1/models``, ``/v1/chat/completions`` and ``/v1/completions``.

Any OpenAI client (and ``backend=openai``) can then sample the served base model or any saved
checkpoint: a request names a model by the base model's name, a checkpoint folder (or run folder),
or one of this server's ``tinker://`` paths; ``server.checkpoint`` sets what an unnamed request gets.
Chat prompts go through the model's own chat template, exactly as ``tinkerx.chat`` renders them for
training and evaluation.

Concurrent requests are batched: while one batch decodes, new requests queue, and those with the
same model and sampling settings go into the next ``sample_many`` call together. Streaming answers
are server-sent events cut at token boundaries; they are sent when the batch finishes decoding.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tinkerx.errors import UserError
from tinkerx.serve import completions

# An OpenAI request may omit max_tokens; an unbounded reply from a small model would run to its context.
DEFAULT_MAX_TOKENS = 256
MAX_BATCH = 64  # prompts per decode batch: a bound on the KV cache of one batch


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.code = status, code


def routes(ctx: Any, checkpoint: str | None = None) -> list[Route]:
    api = OpenAIRoutes(ctx, checkpoint)
    return [
        Route("/v1/models", api.guard(api.models), methods=["GET"]),
        Route("/v1/chat/completions", api.guard(api.chat), methods=["POST"]),
        Route("/v1/completions", api.guard(api.completions), methods=["POST"]),
        # vLLM's tokenizer routes: lm-eval's local-completions tokenizes with the served model's tokenizer.
        Route("/tokenizer_info", api.guard(api.tokenizer_info), methods=["GET"]),
        Route("/tokenize", api.guard(api.tokenize), methods=["POST"]),
        Route("/detokenize", api.guard(api.detokenize), methods=["POST"]),
    ]


@dataclass
class Served:
    model_id: str
    client: Any  # the backend's sampling client
    tokenizer: Any


class OpenAIRoutes:
    def __init__(self, ctx: Any, checkpoint: str | None) -> None:
        from tinkerx.runs.checkpoints import resolve_checkpoint

        self.ctx = ctx
        # Checked now: a wrong server.checkpoint stops the server before it listens.
        self.default = resolve_checkpoint(checkpoint, "server.checkpoint") if checkpoint else ctx.base_model
        self._served: dict[str, asyncio.Task] = {}
        self.queue = BatchQueue()

    def guard(self, handler: Any) -> Any:
        async def route(request: Request) -> Response:
            try:
                body = {} if request.method == "GET" else await request.json()
                if not isinstance(body, dict):
                    raise ApiError(400, "the request body must be a JSON object")
                return await handler(body)
            except ApiError as e:
                return _error(e.status, str(e), e.code)
            except completions.RequestError as e:
                return _error(400, str(e))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return _error(400, "the request body is not valid JSON")
            except (ValueError, TypeError) as e:
                return _error(400, f"{type(e).__name__}: {e}")

        return route

    # ---- models -------------------------------------------------------------------------------
    def offered(self) -> list[str]:
        ids = [self.default, self.ctx.base_model, *self.ctx.registry.checkpoints]
        return list(dict.fromkeys(ids))

    async def models(self, body: dict) -> Response:
        created = int(time.time())
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": created, "owned_by": "tinkerx"} for m in self.offered()]})

    async def served(self, name: str | None) -> Served:
        """The sampling client for a model name, loaded once and kept."""
        name = name or self.default
        if name not in self._served:
            local = self._checkpoint_path(name)
            base = self.ctx.base_model

            def load() -> Served:
                from tinkerx.serve.context import as_future

                client = as_future(self.ctx.service.create_sampling_client(model_path=local, base_model=None if local else base)).result()
                return Served(name, client, client.get_tokenizer())

            self._served[name] = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(self.ctx.submit_pool, load))
        try:
            return await asyncio.shield(self._served[name])
        except (ValueError, FileNotFoundError) as e:
            del self._served[name]
            raise ApiError(400, f"model {name!r} cannot be served: {e}") from None

    def _checkpoint_path(self, name: str) -> str | None:
        """None for the base model; the local folder of a checkpoint; 404 for anything else."""
        from tinkerx.errors import ConfigError
        from tinkerx.runs.checkpoints import resolve_checkpoint

        if name == self.ctx.base_model:
            return None
        if name in self.ctx.registry.checkpoints:
            return self.ctx.registry.checkpoints[name]["local_path"]
        try:
            if "://" not in name and (Path(resolve_checkpoint(name, "model")) / "meta.json").is_file():
                return resolve_checkpoint(name, "model")
        except ConfigError:
            pass
        raise ApiError(404, f"model {name!r} not found; this server offers: {', '.join(self.offered())} (or any checkpoint folder)", "model_not_found")

    # ---- sampling -----------------------------------------------------------------------------
    async def chat(self, body: dict) -> Response:
        from tinkerx.chat import prompt_tokens

        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "messages must be a non-empty list of {role, content}")
        served = await self.served(body.get("model"))
        prompt = prompt_tokens(served.tokenizer, [_message(m) for m in messages])
        return await self._answer(body, served, prompt, chat=True)

    async def completions(self, body: dict) -> Response:
        served = await self.served(body.get("model"))
        from tinkerx.serve.limits import shape_of

        request = completions.parse_request(body, served.tokenizer, DEFAULT_MAX_TOKENS, shape_of(served.client).context_length)
        if body.get("stream") or (len(request.prompts) == 1 and request.top_k is None and not request.echo and request.max_tokens > 0):
            return await self._answer(body, served, request.prompts[0], chat=False)
        return await self._score_and_answer(body, served, request)

    async def _score_and_answer(self, body: dict, served: Served, request: completions.CompletionRequest) -> Response:
        """Batches of prompts, echo, logprobs with top_logprobs, max_tokens 0: what harnesses send.

        Sampled tokens come from the batch queue; with logprobs, each prompt-plus-completion is then
        scored by one forward of its own, so the numbers do not depend on what else was batched."""
        from tinkerx.eval.prompt_scores import score_prompts

        started = int(time.time())
        if request.max_tokens > 0:
            params, _, stop = _sampling({**body, "n": request.n, "max_tokens": request.max_tokens})
            responses = await asyncio.gather(*(self.queue.sample(served.client, p, request.n, params) for p in request.prompts))
            generated = [[(list(s.tokens), s.stop_reason) for s in r.sequences] for r in responses]
        else:
            stop, generated = [], [[([], "length")] * request.n for _ in request.prompts]
        rows = [(prompt, tokens, reason) for prompt, outs in zip(request.prompts, generated) for tokens, reason in outs]
        scores = None
        if request.top_k is not None:
            loop = asyncio.get_running_loop()
            sequences = [prompt + tokens for prompt, tokens, _ in rows]
            scores = await loop.run_in_executor(self.ctx.submit_pool, lambda: score_prompts(served.client, sequences, max(request.top_k, 1)))
        choices = []
        for index, (prompt, tokens, reason) in enumerate(rows):
            text = served.tokenizer.decode(tokens, skip_special_tokens=True)
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            finish = "stop" if cut >= 0 or reason != "length" else "length"
            text = text[:cut] if cut >= 0 else text
            if request.echo:
                text = served.tokenizer.decode(prompt) + text
            logprobs = None
            if scores is not None:
                s = scores[index]
                logprobs = completions.logprobs_field(served.tokenizer, s.tokens, s.logprobs, s.top, 0 if request.echo else len(prompt), request.top_k)
            choices.append({"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish})
        usage = {"prompt_tokens": sum(len(p) for p in request.prompts), "completion_tokens": sum(len(t) for _, t, _ in rows)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": started, "model": served.model_id}
        return JSONResponse({**head, "choices": choices, "usage": usage})

    # ---- tokenizer (vLLM's routes) ------------------------------------------------------------
    async def tokenizer_info(self, body: dict) -> Response:
        return JSONResponse(completions.tokenizer_info((await self.served(None)).tokenizer))

    async def tokenize(self, body: dict) -> Response:
        return JSONResponse(completions.tokenize((await self.served(body.get("model"))).tokenizer, body))

    async def detokenize(self, body: dict) -> Response:
        return JSONResponse(completions.detokenize((await self.served(body.get("model"))).tokenizer, body))

    async def _answer(self, body: dict, served: Served, prompt: list[int], chat: bool) -> Response:
        params, n, stop = _sampling(body)
        started = int(time.time())
        response = await self.queue.sample(served.client, prompt, n, params)
        choices = [_choice(served.tokenizer, i, seq, stop, body, chat) for i, seq in enumerate(response.sequences)]
        usage = {"prompt_tokens": len(prompt), "completion_tokens": sum(len(s.tokens) for s in response.sequences)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        reply_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        head = {"id": reply_id, "created": started, "model": served.model_id}
        if body.get("stream"):
            with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_events(head, choices, usage if with_usage else None, chat), media_type="text/event-stream")
        obj = "chat.completion" if chat else "text_completion"
        return JSONResponse({**head, "object": obj, "choices": [c.whole() for c in choices], "usage": usage})


def _message(m: Any) -> dict[str, str]:
    if not isinstance(m, dict) or not isinstance(m.get("role"), str):
        raise ApiError(400, "each message needs a role and a content")
    content = m.get("content")
    if isinstance(content, list):  # content parts: only text can be served by a text model
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    if not isinstance(content, str):
        raise ApiError(400, f"message content must be a string or text parts, got {type(content).__name__}")
    return {"role": m["role"], "content": content}


def _sampling(body: dict) -> tuple[Any, int, list[str]]:
    from tinker import types

    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, "stop must be a string or a list of non-empty strings")
    n = body.get("n") or 1
    if not isinstance(n, int) or n < 1:
        raise ApiError(400, f"n must be a positive integer, got {n!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, f"max_tokens must be a positive integer, got {max_tokens!r}")
    temperature = body.get("temperature")
    top_p = body.get("top_p")
    params = types.SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        seed=body.get("seed"),
        stop=stop or None,
    )
    return params, n, stop


@dataclass
class _Choice:
    index: int
    text: str
    pieces: list[str]  # the text, cut at token boundaries (for streaming)
    logprobs: list[tuple[str, float]]
    finish_reason: str
    chat: bool
    want_logprobs: bool

    def logprobs_field(self) -> Any:
        if not self.want_logprobs:
            return None
        if self.chat:  # only the chosen tokens' logprobs: alternatives (top_logprobs) are not computed
            return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []} for t, lp in self.logprobs]}
        offsets = [sum(len(t) for t, _ in self.logprobs[:i]) for i in range(len(self.logprobs))]
        return {"tokens": [t for t, _ in self.logprobs], "token_logprobs": [lp for _, lp in self.logprobs], "top_logprobs": None, "text_offset": offsets}

    def whole(self) -> dict:
        if self.chat:
            return {"index": self.index, "message": {"role": "assistant", "content": self.text}, "logprobs": self.logprobs_field(), "finish_reason": self.finish_reason}
        return {"index": self.index, "text": self.text, "logprobs": self.logprobs_field(), "finish_reason": self.finish_reason}


def _choice(tokenizer: Any, index: int, seq: Any, stop: list[str], body: dict, chat: bool) -> _Choice:
    tokens, logprobs = list(seq.tokens), list(seq.logprobs or [])
    text, finish = tokenizer.decode(tokens, skip_special_tokens=True), "length" if seq.stop_reason == "length" else "stop"
    cut = min((text.find(s) for s in stop if s in text), default=-1)
    if cut >= 0:  # OpenAI's stop: the reply ends before the stop string
        text, finish = text[:cut], "stop"
    want = bool(body.get("logprobs")) if chat else body.get("logprobs") is not None
    if not (want or body.get("stream")):
        return _Choice(index, text, [text], [], finish, chat, want)
    # Per-token pieces by cumulative decoding, so characters split across tokens come out whole.
    pieces, pairs, shown = [], [], 0
    for k in range(1, len(tokens) + 1):
        if shown >= len(text):
            break
        end = min(len(prefix := tokenizer.decode(tokens[:k], skip_special_tokens=True)), len(text))
        piece = prefix[shown:end]
        shown = max(shown, end)
        pieces.append(piece)
        pairs.append((piece, logprobs[k - 1] if k - 1 < len(logprobs) else 0.0))
    return _Choice(index, text, pieces, pairs, finish, chat, want)


async def _events(head: dict, choices: list[_Choice], usage: dict | None, chat: bool) -> AsyncIterator[str]:
    obj = "chat.completion.chunk" if chat else "text_completion"

    def event(payload: dict) -> str:
        return f"data: {json.dumps({**head, 'object': obj, **payload})}\n\n"

    for c in choices:
        if chat:
            yield event({"choices": [{"index": c.index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        for piece, (token, lp) in zip(c.pieces, c.logprobs):
            logprobs = None
            if c.want_logprobs:
                logprobs = {"content": [{"token": token, "logprob": lp, "bytes": list(token.encode()), "top_logprobs": []}]} if chat else {"tokens": [token], "token_logprobs": [lp], "top_logprobs": None, "text_offset": [0]}
            delta = {"delta": {"content": piece}} if chat else {"text": piece}
            yield event({"choices": [{"index": c.index, **delta, "logprobs": logprobs, "finish_reason": None}]})
        last = {"delta": {}} if chat else {"text": ""}
        yield event({"choices": [{"index": c.index, **last, "logprobs": None, "finish_reason": c.finish_reason}]})
    if usage is not None:
        yield event({"choices": [], "usage": usage})
    yield "data: [DONE]\n\n"


def _error(status: int, message: str, code: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}, status)


class BatchQueue:
    """Gathers concurrent requests into ``sample_many`` batches.

    One consumer takes everything waiting with the same client and sampling settings as one batch;
    requests that arrive while it decodes form the next. Requests without a seed share a batch;
    seeded ones batch with the same seed (the backend seeds a batch's prompts from its params).
    """

    def __init__(self) -> None:
        self._waiting: dict[tuple, tuple[Any, int, Any, list[tuple[list[int], asyncio.Future]]]] = {}
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self.batches: list[int] = []  # sizes of the batches sent, for tests and benchmarks

    async def sample(self, client: Any, prompt: list[int], n: int, params: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._run())
        key = (id(client), n, params.model_dump_json())
        done: asyncio.Future = loop.create_future()
        self._waiting.setdefault(key, (client, n, params, []))[3].append((prompt, done))
        self._wake.set()
        return await done

    async def _run(self) -> None:
        from tinkerx.sampler import sample_prompts

        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                key = next(iter(self._waiting))
                client, n, params, items = self._waiting.pop(key)
                for start in range(0, len(items), MAX_BATCH):
                    batch = items[start : start + MAX_BATCH]
                    self.batches.append(len(batch))
                    try:
                        futures = sample_prompts(client, [p for p, _ in batch], n, params)
                        results = await asyncio.gather(*(_wait(f) for f in futures), return_exceptions=True)
                    except Exception as e:  # the whole batch failed to start: every caller hears why
                        results = [e] * len(batch)
                    for (_, done), result in zip(batch, results):
                        if done.done():
                            continue
                        if isinstance(result, BaseException):
                            done.set_exception(ApiError(400 if isinstance(result, (ValueError, UserError)) else 500, f"{type(result).__name__}: {result}"))
                        else:
                            done.set_result(result)


async def _wait(future: Any) -> Any:
    import concurrent.futures

    if isinstance(future, concurrent.futures.Future):
        return await asyncio.wrap_future(future)
    return await asyncio.get_running_loop().run_in_executor(None, future.result)

"""The state every endpoint shares, and how an operation runs on the backend.

An operation has two halves: ``start`` submits it to the backend (a quick call that returns the
backend's future, run on a thread so a slow submission never stalls the event loop), and
``finish`` turns the backend's answer into the wire result. Waiting for the answer happens off the
event loop, so many operations can be in flight at once, as they would be on Tinker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass, field
from typing import Any, Callable

from tinkerx.serve.registry import Model, Registry
from tinkerx.serve.scheduler import SamplingScheduler
from tinkerx.serve.store import FutureStore, Result


@dataclass
class Faults:
    """Failures the server injects so clients' retry paths get exercised (all off by default)."""

    seed: int = 0
    rate_429: float = 0.0  # answer 429 + retry-after before accepting the request
    rate_503: float = 0.0  # accept the request, then answer 503 as if the reply was lost
    slow_rate: float = 0.0  # answer only after slow_s more seconds
    slow_s: float = 2.0
    retry_after_s: float = 0.2


@dataclass
class ServerConfig:
    """Mirrors ``server:`` in conf/serve.yaml (where each value is explained); these defaults are for tests."""

    latency_s: float = 0.0  # added to every request that submits work, like a far-away service
    poll_hold_s: float = 20.0  # how long retrieve_future waits for a result before "try_again"
    compress_fwdbwd: bool = True  # ask clients to zstd-compress forward_backward bodies
    api_keys: list[str] = field(default_factory=list)  # empty: no key checked (loopback only)
    max_request_bytes: int = 64 << 20
    max_tokens: int = 8192
    max_num_samples: int = 128
    max_prompt_tokens: int = 32768
    sample_chunk_tokens: int = 32
    max_batch_rows: int = 64
    batch_gather_s: float = 0.02
    session_timeout_s: float = 60.0
    faults: Faults = field(default_factory=Faults)
    checkpoint: str | None = None  # what the OpenAI-compatible /v1 routes serve by default (None: the base model)
    max_tokens_per_forward: int | None = None  # padded tokens one forward/backward pass holds (None: from the model and free memory)


class Ready:
    """A value that is already there, shaped like a backend future."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value


def as_future(value: Any) -> Any:
    """Backend calls answer a future, or (sampling clients) the object itself: make both futures."""
    if hasattr(value, "sample") or not callable(getattr(value, "result", None)):
        return Ready(value)
    return value


def failure(exc: BaseException) -> Result:
    user = isinstance(exc, (ValueError, KeyError, TypeError))
    return Result(error=f"{type(exc).__name__}: {exc}", category="user" if user else "server")


@dataclass
class Context:
    service: Any  # the backend's service client
    base_model: str
    registry: Registry
    config: ServerConfig
    store: FutureStore = field(default_factory=FutureStore)
    # Submissions are quick but may block (a save that waits for earlier work); waits block long.
    submit_pool: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="serve-submit")
    )
    wait_pool: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(256, thread_name_prefix="serve-wait")
    )
    scheduler: SamplingScheduler = field(init=False)
    _reaper: asyncio.Task | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.scheduler = SamplingScheduler(self.config.sample_chunk_tokens, self.config.max_batch_rows, self.store.finish, self.config.batch_gather_s)

    def start_background(self) -> None:
        """Start, on the server's event loop, the task that ends sessions whose client went silent."""
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._end_silent_sessions())

    async def _end_silent_sessions(self) -> None:
        timeout = self.config.session_timeout_s
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            for session_id in self.registry.silent_sessions(timeout):
                self.end_session(session_id, f"no heartbeat or request from the client for {timeout:g} s")

    def end_session(self, session_id: str, reason: str) -> None:
        """Cancel the session's queued and running sampling, and forget its models and samplers."""
        self.scheduler.cancel_session(session_id, reason)
        self.registry.finish_session(session_id)

    async def execute(
        self,
        request_id: str,
        start: Callable[[], Any],
        finish: Callable[[Any], Result],
        model: Model | None = None,
        op: str | None = None,
    ) -> None:
        """Submit now (callers order submissions), then complete in the background."""
        loop = asyncio.get_running_loop()
        try:
            handle = as_future(await loop.run_in_executor(self.submit_pool, start))
        except Exception as exc:  # a bad request surfaces to the client as a failed future
            self.store.finish(request_id, failure(exc))
            return
        loop.create_task(self._complete(request_id, handle, finish, model, op))

    async def _complete(self, request_id, handle, finish, model, op) -> None:
        try:
            if isinstance(handle, concurrent.futures.Future):
                value = await asyncio.wrap_future(handle)
            else:
                value = await asyncio.get_running_loop().run_in_executor(self.wait_pool, handle.result)
            result = finish(value)
            if model is not None and op is not None:
                model.ops[op] = model.ops.get(op, 0) + 1
        except Exception as exc:
            result = failure(exc)
        self.store.finish(request_id, result)

    def close(self) -> None:
        self.scheduler.close()
        if self._reaper is not None:
            self._reaper.cancel()
        self.submit_pool.shutdown(wait=False, cancel_futures=True)
        self.wait_pool.shutdown(wait=False, cancel_futures=True)

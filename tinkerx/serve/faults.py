"""Latency and failures injected in front of every endpoint, so clients' retry paths get tested.

A 429 is answered before the request is accepted, as a rate limiter would. A 503 is answered
after the request was accepted and applied, as if the reply got lost on the way back: the client
retries, and only the server's ``seq_id`` deduplication keeps the step from being applied twice.
"""

from __future__ import annotations

import asyncio
import random
from typing import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tinkerx.serve.context import ServerConfig

# Background liveness traffic and the server's own statistics: failing them tests nothing and only
# makes logs noisy (and the statistics unreadable).
EXEMPT = {"/api/v1/session_heartbeat", "/api/v1/telemetry", "/api/v1/client/dynamic_config", "/tinkerx/stats"}
# Requests that submit work; each reaches the server ``latency_s`` after it was sent, like a request
# to a far-away service, so no work starts before then. Polls (retrieve_future) are not delayed:
# one operation costs one latency, not one per poll.
SUBMITS = {
    "/api/v1/create_model", "/api/v1/forward", "/api/v1/forward_backward", "/api/v1/optim_step",
    "/api/v1/save_weights", "/api/v1/save_weights_for_sampler", "/api/v1/load_weights",
    "/api/v1/create_sampling_session", "/api/v1/asample",
}  # fmt: skip


class FaultInjector:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.faults = config.faults
        self._rng = random.Random(self.faults.seed)
        self.counts = {"429": 0, "503": 0, "slow": 0}

    def _draw(self) -> str | None:
        roll = self._rng.random()
        for name, rate in (("429", self.faults.rate_429), ("503", self.faults.rate_503), ("slow", self.faults.slow_rate)):
            if roll < rate:
                self.counts[name] += 1
                return name
            roll -= rate
        return None

    async def around(self, request: Request, handle: Callable[[], Awaitable[Response]]) -> Response:
        path = request.url.path
        if path in SUBMITS and self.config.latency_s > 0:
            await asyncio.sleep(self.config.latency_s)
        fault = None if path in EXEMPT else self._draw()
        retry_after = {"retry-after": str(self.faults.retry_after_s)}
        if fault == "429":
            return JSONResponse({"detail": "rate limited (injected by tinkerx serve)"}, 429, headers=retry_after)
        response = await handle()
        if fault == "slow":
            await asyncio.sleep(self.faults.slow_s)
        if fault == "503":
            return JSONResponse({"detail": "reply lost (injected by tinkerx serve)"}, 503, headers=retry_after)
        return response

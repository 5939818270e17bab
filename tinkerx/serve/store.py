"""Results of long operations, by request id, and the held-open poll that fetches them.

Tinker answers a submitted operation with a request id at once; the client then polls
``retrieve_future``. Holding each poll open until the result exists (or ``hold_s`` passes) turns
polling into one round trip per operation instead of a busy loop.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Result:
    json: Any = None  # a JSON-able dict for every result type but the two below
    proto: bytes | None = None  # ForwardBackwardOutput and SampleResponse travel as protobuf
    error: str | None = None
    category: str = "server"  # "user" when the request itself was wrong


class FutureStore:
    # A result stays this long after it was first handed out, for a poll whose reply got lost.
    KEEP_S = 300.0

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[Result]] = {}
        self._ids = itertools.count(1)

    def new(self, kind: str) -> str:
        request_id = f"{kind}-{next(self._ids)}"
        self._futures[request_id] = asyncio.get_running_loop().create_future()
        return request_id

    def known(self, request_id: str) -> bool:
        return request_id in self._futures

    def finish(self, request_id: str, result: Result) -> None:
        future = self._futures[request_id]
        if not future.done():
            future.set_result(result)

    async def wait(self, request_id: str, hold_s: float) -> Result | None:
        """The result, or None if it is not ready within ``hold_s`` (the client polls again)."""
        future = self._futures[request_id]
        try:
            result = await asyncio.wait_for(asyncio.shield(future), hold_s)
        except asyncio.TimeoutError:
            return None
        # Not dropped at once: a poll whose answer got lost may come again.
        asyncio.get_running_loop().call_later(self.KEEP_S, self._futures.pop, request_id, None)
        return result

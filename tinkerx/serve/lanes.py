"""Requests run in the order the client numbered them.

The SDK numbers each request of a training model or sampling client (``seq_id``) and the server
must hand them to the backend in that order, whatever order they arrive in (concurrent
connections, retries, parallel chunks): for training that is Tinker's contract, and for sampling it
keeps the backend's random stream in the order a local run would consume it. A lane submits
request ``n`` only after ``n - 1``; the backend's own worker then keeps that order.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable


class Lane:
    def __init__(self, next_seq: int, gap_timeout_s: float | None = None) -> None:
        self._next = next_seq
        # Sampling lanes are lenient: a request that has not arrived after ``gap_timeout_s``
        # (retries exhausted, or a client slowed down) stops holding up the ones after it, and
        # runs whenever it does arrive. Only the order of random draws is at stake there; training
        # lanes wait, as Tinker does.
        self._gap_timeout_s = gap_timeout_s
        self._waiting: dict[int, Callable[[], Awaitable[None]]] = {}
        self._lock = asyncio.Lock()

    def add(self, seq_id: int, start: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        if seq_id < self._next and self._gap_timeout_s is not None:
            loop.create_task(start())  # skipped over earlier: late, but not lost
            return
        if seq_id < self._next or seq_id in self._waiting:
            raise ValueError(f"seq_id {seq_id} was already submitted (next expected {self._next})")
        self._waiting[seq_id] = start
        loop.create_task(self._drain())
        if self._gap_timeout_s is not None and self._next not in self._waiting:
            loop.call_later(self._gap_timeout_s, self._skip_gap, self._next)

    def skip(self, seq_id: int) -> None:
        """A request that was rejected: its number is used up, so the ones after it must not wait for it."""
        if seq_id >= self._next and seq_id not in self._waiting:
            self.add(seq_id, _nothing)

    def _skip_gap(self, stuck_at: int) -> None:
        if self._next == stuck_at and self._waiting and stuck_at not in self._waiting:
            self._next = min(self._waiting)
            asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        async with self._lock:
            while self._next in self._waiting:
                start = self._waiting.pop(self._next)
                self._next += 1
                await start()


async def _nothing() -> None:
    return None

"""The sampling scheduler's batch window: requests that keep arriving a few milliseconds apart (as
16 SDK requests sent together do) decode in one batch, not the first alone and the rest after."""

from __future__ import annotations

import asyncio
import concurrent.futures
from types import SimpleNamespace

from tinker import types

from tinkerx.serve.scheduler import Job, SamplingScheduler
from tinkerx.serve.store import Result


class _Engine:
    """Records each decode call's prompts; answers every row with one token."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def sample(self, snapshot, prompts, per_prompt, params, seeds):
        self.calls.append(len(prompts))
        seq = SimpleNamespace(tokens=[1], logprobs=[-0.5], stop_reason="stop")
        return [[seq] * per_prompt for _ in prompts]


class _Service:
    def submit(self, fn):
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(fn())
        return future


def _run(arrival_gap_s: float, jobs: int, gather_s: float) -> list[int]:
    engine = _Engine()
    client = SimpleNamespace(engine=engine, snapshot=object(), service=_Service())
    done: dict[str, Result] = {}
    params = types.SamplingParams(max_tokens=1, temperature=1.0)

    async def main() -> None:
        scheduler = SamplingScheduler(chunk_tokens=32, max_batch_rows=64, on_done=done.__setitem__, gather_s=gather_s)
        for i in range(jobs):
            job = Job(f"r{i}", f"s{i}", client, [5, i], 1, params, seed=i, finish=lambda response: Result(proto=b""))
            scheduler.submit(job)
            await asyncio.sleep(arrival_gap_s)
        while len(done) < jobs:
            await asyncio.sleep(0.01)
        scheduler.close()

    asyncio.run(main())
    return engine.calls


def test_requests_arriving_milliseconds_apart_share_one_batch():
    # 8 requests 10 ms apart span 70 ms: longer than the 20 ms window, which restarts on each arrival.
    assert _run(arrival_gap_s=0.01, jobs=8, gather_s=0.02) == [8]


def test_the_window_is_bounded_when_requests_never_stop_arriving():
    # A steady stream cannot hold the first request back forever: at most 5 windows (100 ms) pass.
    calls = _run(arrival_gap_s=0.01, jobs=40, gather_s=0.02)
    assert len(calls) >= 2 and calls[0] < 40

"""Sampling work of every client, decoded in shared batches, a bounded chunk at a time.

Jobs wait in one queue per session. Each turn takes the next session in round-robin order, its
oldest job, and every other queued job that can share the decode (same weights, same samples per
prompt, same sampling settings) up to ``max_batch_rows`` sequences, and decodes at most
``chunk_tokens`` tokens of them with the engine's batched ``sample`` on the backend's worker.
Unfinished jobs go back to the end of their queue. So concurrent requests share one batch, a long
job yields to every other session after each chunk, and a cancelled job stops at the next chunk.

A job's first chunk decodes ``num_samples`` continuations of its prompt from its seed, exactly as a
local ``sample`` call does; later chunks continue each sample as its own prompt (prompt plus the
tokens so far) from a seed derived from the job's. A stop string split across a chunk boundary is
not seen, so ``sample_chunk_tokens`` should stay well above the stop strings' length in tokens.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from tinker import types

from tinkerx.serve.store import Result

_SEED_MODULUS = 2**31 - 1


@dataclass(eq=False)
class Job:
    request_id: str
    session_id: str
    client: Any  # the local backend's sampling client: its engine, weights snapshot and worker
    prompt: list[int]
    num_samples: int
    params: types.SamplingParams
    seed: int
    finish: Callable[[types.SampleResponse], Result]
    tokens_S_T: list[list[int]] = field(default_factory=list)  # per sample, once the first chunk ran
    logprobs_S_T: list[list[float]] = field(default_factory=list)
    stopped_S: list[bool] = field(default_factory=list)
    chunks: int = 0
    cancelled: str | None = None

    @property
    def started(self) -> bool:
        return self.chunks > 0

    @property
    def remaining(self) -> int:
        done = max((len(t) for t, s in zip(self.tokens_S_T, self.stopped_S) if not s), default=0)
        return self.params.max_tokens - done

    @property
    def live(self) -> list[int]:
        return [i for i, s in enumerate(self.stopped_S) if not s]

    def rows(self) -> tuple[list[list[int]], list[int]]:
        """The prompts and seeds of this job's next chunk."""
        if not self.started:
            return [self.prompt], [self.seed]
        seeds = [hash((self.seed, i, self.chunks)) % _SEED_MODULUS for i in self.live]
        return [self.prompt + self.tokens_S_T[i] for i in self.live], seeds

    def row_count(self) -> int:
        return self.num_samples if not self.started else len(self.live)

    def batch_key(self) -> tuple:
        p = self.params
        stop = tuple(p.stop) if isinstance(p.stop, list) else p.stop
        per_prompt = 1 if self.started else self.num_samples
        return (id(self.client.engine), id(self.client.snapshot), per_prompt, p.temperature, p.top_k, p.top_p, stop)

    def take(self, generated: list[list[Any]]) -> None:
        """Fold one chunk's output (per row: the engine's generated samples) into the job."""
        if not self.started:
            (samples,) = generated
            self.tokens_S_T = [list(g.tokens) for g in samples]
            self.logprobs_S_T = [list(g.logprobs) for g in samples]
            self.stopped_S = [g.stop_reason == "stop" for g in samples]
        else:
            for i, (g,) in zip(self.live, generated):
                self.tokens_S_T[i] += g.tokens
                self.logprobs_S_T[i] += g.logprobs
                self.stopped_S[i] = g.stop_reason == "stop"
        self.chunks += 1

    def response(self) -> types.SampleResponse:
        return types.SampleResponse(
            sequences=[
                types.SampledSequence(
                    stop_reason="stop" if stopped else "length", sequence_id=uuid.uuid4().hex, _tokens_list=toks, _logprobs_list=lps
                )
                for toks, lps, stopped in zip(self.tokens_S_T, self.logprobs_S_T, self.stopped_S)
            ]
        )


class SamplingScheduler:
    def __init__(self, chunk_tokens: int, max_batch_rows: int, on_done: Callable[[str, Result], None], gather_s: float = 0.0) -> None:
        self.chunk_tokens = chunk_tokens
        self.gather_s = gather_s
        self.max_batch_rows = max_batch_rows
        self._on_done = on_done
        self._queues: collections.OrderedDict[str, collections.deque[Job]] = collections.OrderedDict()
        self._running: list[Job] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.stats = {"batches": 0, "rows": 0, "max_batch_rows": 0, "completed": 0, "cancelled": 0}

    def snapshot(self) -> dict[str, int]:
        return {**self.stats, "queued": self._queued_jobs(), "running": len(self._running)}

    def submit(self, job: Job) -> None:
        self._queues.setdefault(job.session_id, collections.deque()).append(job)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def cancel_session(self, session_id: str, reason: str) -> None:
        for job in self._queues.pop(session_id, ()):
            self._cancel(job, reason)
        for job in self._running:
            if job.session_id == session_id and job.cancelled is None:
                job.cancelled = reason  # its chunk finishes on the worker; the result is dropped

    def _cancel(self, job: Job, reason: str) -> None:
        job.cancelled = reason
        self.stats["cancelled"] += 1
        self._on_done(job.request_id, Result(error=f"cancelled: {reason}", category="user"))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _next_batch(self) -> list[Job]:
        session_id, queue = next(iter(self._queues.items()))
        head = queue.popleft()
        self._queues.move_to_end(session_id)  # round robin: this session waits for the others
        batch, rows, key = [head], head.row_count(), head.batch_key()
        for queue in self._queues.values():
            for job in list(queue):
                if job.batch_key() == key and rows + job.row_count() <= self.max_batch_rows:
                    queue.remove(job)
                    batch.append(job)
                    rows += job.row_count()
        for session_id in [s for s, q in self._queues.items() if not q]:
            del self._queues[session_id]
        return batch

    async def _loop(self) -> None:
        await self._gather()  # the very first request starts the loop: it waits for its company too
        while True:
            if not self._queues:
                self._wake.clear()
                await self._wake.wait()
                await self._gather()
                continue
            batch = self._next_batch()
            self._running = batch
            try:
                await self._run_chunk(batch)
            except Exception as exc:  # a failed decode fails its jobs, never the loop
                for job in batch:
                    self._on_done(job.request_id, Result(error=f"{type(exc).__name__}: {exc}", category="server"))
                continue
            finally:
                self._running = []
            for job in batch:
                if job.cancelled is not None:
                    self._cancel(job, job.cancelled)
                elif job.live and job.remaining > 0:
                    self._queues.setdefault(job.session_id, collections.deque()).append(job)
                else:
                    self.stats["completed"] += 1
                    asyncio.get_running_loop().create_task(self._finish(job))

    async def _gather(self) -> None:
        """Clients that send together arrive milliseconds apart (16 SDK requests take tens of ms to
        send): wait while they keep arriving, ``gather_s`` after the latest, at most 5 x ``gather_s``
        in all, so the first request decodes in one batch with the rest rather than alone."""
        if not self.gather_s:
            return
        deadline = asyncio.get_running_loop().time() + 5 * self.gather_s
        while True:
            seen = self._queued_jobs()
            await asyncio.sleep(self.gather_s)
            if self._queued_jobs() == seen or asyncio.get_running_loop().time() >= deadline:
                return

    def _queued_jobs(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def _run_chunk(self, batch: list[Job]) -> None:
        head = batch[0]
        prompts: list[list[int]] = []
        seeds: list[int] = []
        for job in batch:
            job_prompts, job_seeds = job.rows()
            prompts += job_prompts
            seeds += job_seeds
        max_tokens = min([self.chunk_tokens] + [job.remaining for job in batch])
        params = head.params.model_copy(update={"max_tokens": max_tokens})
        per_prompt = 1 if head.started else head.num_samples
        engine, snapshot = head.client.engine, head.client.snapshot
        generated = await asyncio.wrap_future(
            head.client.service.submit(lambda: engine.sample(snapshot, prompts, per_prompt, params, seeds))
        )
        rows = len(prompts) * per_prompt
        self.stats["batches"] += 1
        self.stats["rows"] += rows
        self.stats["max_batch_rows"] = max(self.stats["max_batch_rows"], rows)
        offset = 0
        for job in batch:
            n = len(job.rows()[0])
            job.take(generated[offset : offset + n])
            offset += n

    async def _finish(self, job: Job) -> None:
        try:
            result = job.finish(job.response())
            if asyncio.iscoroutine(result):
                result = await result
        except Exception as exc:
            result = Result(error=f"{type(exc).__name__}: {exc}", category="server")
        self._on_done(job.request_id, result)

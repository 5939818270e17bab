"""Running session calls off the event loop: one at a time, followable, stoppable between steps.

The session is a singleton: a call that finds another one running waits up to ``busy_timeout_s``
for it, then answers "busy" naming the running tool. Work runs on its own thread, so the server
keeps answering (status, wait, cancel) while a model trains. A call can be waited on (progress is
reported per step) or started with ``wait=False`` and followed by its job id.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from tinkerx.errors import UserError

POLL_S = 0.05


class Busy(UserError):
    pass


@dataclass
class Job:
    id: str
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    done_steps: int = 0
    total_steps: int = 0
    last_metrics: dict[str, Any] | None = None
    result: Any = None
    error: str | None = None
    finished: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> dict[str, Any]:
        state = "running" if not self.ended.is_set() else ("failed" if self.error else "finished")
        out: dict[str, Any] = {"job_id": self.id, "tool": self.tool, "state": state, "progress": f"{self.done_steps}/{self.total_steps}"}
        if self.stop.is_set():
            out["cancel_requested"] = True
        if self.ended.is_set():
            out["duration_s"] = round((self.finished or time.time()) - self.started, 2)
            out.update({"error": self.error} if self.error else {"result": self.result})
        else:
            out["running_s"] = round(time.time() - self.started, 1)
        return out


Work = Callable[[Job], Any]  # runs on the job's thread; reads job.stop, updates job.done_steps


class JobRunner:
    def __init__(self, busy_timeout_s: float = 10.0, on_end: Callable[[Job], None] | None = None) -> None:
        self.busy_timeout_s = busy_timeout_s
        self.on_end = on_end  # records the finished call (tool_calls.jsonl)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.jobs: dict[str, Job] = {}
        self.current: Job | None = None

    async def acquire(self, tool: str) -> None:
        """Wait (without blocking the event loop) for the session; Busy after ``busy_timeout_s``."""
        deadline = time.monotonic() + self.busy_timeout_s
        while not self._lock.acquire(blocking=False):
            if time.monotonic() >= deadline:
                running = self.current
                what = f"{running.tool} (job {running.id}, running {time.time() - running.started:.0f}s, {running.done_steps}/{running.total_steps} steps)" if running else "another call"
                raise Busy(f"busy: {what} is running; {tool} was not started. Follow it with wait(job_id) or status(), stop it with cancel(job_id), then retry")
            await asyncio.sleep(POLL_S)

    def start(self, tool: str, arguments: dict[str, Any], work: Work) -> Job:
        """Runs ``work`` on a new thread; the caller must hold the session (``acquire``)."""
        job = Job(id=f"job-{next(self._ids)}", tool=tool, arguments=arguments)
        self.jobs[job.id] = job
        self.current = job

        def target() -> None:
            try:
                job.result = work(job)
            except UserError as e:
                job.error = " ".join(str(e).split())
            except BaseException as e:  # noqa: BLE001 - a bug in one call must not kill the server
                job.error = f"{type(e).__name__}: {' '.join(str(e).split())}"
            finally:
                job.finished = time.time()
                try:
                    if self.on_end is not None:  # before the next call can start: the log stays in order
                        self.on_end(job)
                finally:
                    self.current = None
                    self._lock.release()
                    job.ended.set()

        threading.Thread(target=target, name=f"tinkerx-mcp-{job.id}", daemon=True).start()
        return job

    async def follow(self, job: Job, report: Callable[[int, int, str], Awaitable[None]] | None = None, timeout_s: float | None = None) -> Job:
        """Waits for ``job``, reporting each step; a cancelled wait asks the job to stop after its step."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        reported = 0
        try:
            while not job.ended.is_set():
                if report is not None and job.done_steps != reported:
                    reported = job.done_steps
                    await report(job.done_steps, job.total_steps, _progress_message(job))
                if deadline is not None and time.monotonic() >= deadline:
                    break
                await asyncio.sleep(POLL_S)
        except asyncio.CancelledError:
            job.stop.set()  # the client cancelled the request: stop between steps, keep the state
            raise
        if report is not None and job.ended.is_set() and job.done_steps != reported:
            await report(job.done_steps, job.total_steps, _progress_message(job))
        return job

    def get(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise UserError(f"unknown job {job_id!r}; known: {', '.join(self.jobs) or 'none'}")
        return self.jobs[job_id]


def _progress_message(job: Job) -> str:
    shown = ("train/loss", "val/loss", "reward/mean", "reward/accuracy", "groups/all_0", "groups/all_1")
    metrics = job.last_metrics or {}
    figures = ", ".join(f"{k}={metrics[k]:.4g}" for k in shown if isinstance(metrics.get(k), (int, float)))
    return f"{job.tool}: step {job.done_steps}/{job.total_steps}" + (f" ({figures})" if figures else "")

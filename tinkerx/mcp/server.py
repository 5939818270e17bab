"""The MCP tools: each one translates a call into a ``TrainingSession`` call run by the ``JobRunner``.

No training, sampling or scoring happens here; a tool's docstring is what the agent reads to
choose it, so it says when to use the tool and what comes back.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from tinkerx.errors import UserError
from tinkerx.mcp.jobs import Busy, Job, JobRunner
from tinkerx.mcp.playbook import INSTRUCTIONS, playbook_prompt
from tinkerx.mcp.session import TrainingSession

# (tool = TrainingSession method, reports progress and stops between steps, may run without waiting)
SESSION_TOOLS = (
    ("start_run", False, False),
    ("init_sft", False, False),
    ("init_grpo", False, False),
    ("train_step", True, True),
    ("train_sft_step", True, True),
    ("train_grpo_step", True, True),
    ("sample", False, False),
    ("evaluate", False, True),
    ("save", False, False),
    ("load", False, False),
    ("finish", False, False),
)


def create_server(session: TrainingSession, busy_timeout_s: float = 10.0) -> MCPServer:
    server = MCPServer("tinkerx", instructions=INSTRUCTIONS)
    runner = JobRunner(busy_timeout_s, on_end=lambda job: session.records.tool_call(job.tool, job.arguments, job.started, job.result, job.error))

    async def call(tool: str, arguments: dict[str, Any], ctx: Context | None = None, wait: bool = True, stepped: bool = False) -> Any:
        """Runs ``session.<tool>(**arguments)`` as a job; ``stepped`` tools report progress and can stop."""
        try:
            await runner.acquire(tool)
        except Busy as e:
            session.records.tool_call(tool, arguments, time.time(), error=str(e))
            raise ToolError(str(e)) from None

        def work(job: Job) -> Any:
            kwargs = dict(arguments)
            if stepped:
                def progress(done: int, total: int, metrics: dict[str, Any]) -> None:
                    job.done_steps, job.total_steps, job.last_metrics = done, total, metrics

                kwargs.update(progress=progress, stop=job.stop.is_set)
            return getattr(session, tool)(**kwargs)

        job = runner.start(tool, arguments, work)
        if not wait:
            return {"job_id": job.id, "state": "running", "hint": "follow with wait(job_id) or status(); stop with cancel(job_id)"}
        report = (lambda done, total, message: ctx.report_progress(done, total or None, message)) if ctx is not None else None
        await runner.follow(job, report)
        if job.error:
            raise ToolError(job.error)
        return job.result

    def answered(tool: str, arguments: dict[str, Any], fn: Any) -> Any:
        """A tool that reads state without the session lock, recorded like the others."""
        started = time.time()
        try:
            result = fn()
        except UserError as e:
            session.records.tool_call(tool, arguments, started, error=str(e))
            raise ToolError(" ".join(str(e).split())) from None
        session.records.tool_call(tool, arguments, started, result)
        return result

    for name, stepped, waitable in SESSION_TOOLS:
        server.tool(name=name)(_session_tool(name, call, stepped, waitable))

    @server.tool()
    def list_checkpoints() -> dict[str, Any]:
        """Checkpoints saved in this session (by save and automatically), with their paths."""
        return answered("list_checkpoints", {}, session.list_checkpoints)

    @server.tool()
    def status() -> dict[str, Any]:
        """Where the session stands: method, step, last metrics, elapsed time, checkpoints, the
        session folder, and the job running now (if any)."""
        running = runner.current
        return answered("status", {}, lambda: {**session.status(), "job": running.describe() if running else None})

    @server.tool()
    async def wait(job_id: str, timeout_s: float = 60.0, ctx: Context | None = None) -> dict[str, Any]:
        """Wait up to timeout_s for a job started with wait=false; returns its state and, once
        finished, its result. Reports progress while waiting."""
        started = time.time()
        try:
            job = runner.get(job_id)
        except UserError as e:
            session.records.tool_call("wait", {"job_id": job_id}, started, error=str(e))
            raise ToolError(str(e)) from None
        report = (lambda done, total, message: ctx.report_progress(done, total or None, message)) if ctx is not None else None
        await runner.follow(job, report, timeout_s)
        described = job.describe()
        session.records.tool_call("wait", {"job_id": job_id, "timeout_s": timeout_s}, started, {"state": described["state"]})
        return described

    @server.tool()
    async def cancel(job_id: str) -> dict[str, Any]:
        """Stop a job after its current step; everything done so far is kept."""
        started = time.time()
        try:
            job = runner.get(job_id)
        except UserError as e:
            raise ToolError(str(e)) from None
        job.stop.set()
        await runner.follow(job, timeout_s=30.0)
        described = job.describe()
        session.records.tool_call("cancel", {"job_id": job_id}, started, {"state": described["state"]})
        return described

    @server.prompt()
    def playbook(goal: str = "improve held-out accuracy") -> str:
        """How to train well with these tools: method choice, holdouts, small steps, what to watch."""
        return playbook_prompt(goal)

    return server


def _session_tool(name: str, call: Any, stepped: bool, waitable: bool) -> Any:
    """A tool with the session method's own parameters, types and docstring: each is written once."""
    method = getattr(TrainingSession, name)
    params = [p for n, p in inspect.signature(method, eval_str=True).parameters.items() if n not in ("self", "progress", "stop")]
    doc = inspect.cleandoc(method.__doc__ or "")
    if stepped:
        doc += "\nReports progress per step; cancelling the call stops it after the current step, keeping everything."
    if waitable:
        params.append(inspect.Parameter("wait", inspect.Parameter.KEYWORD_ONLY, default=True, annotation=bool))
        doc += "\nwait=false returns a job id at once: follow it with wait(job_id) or status(), stop it with cancel(job_id)."
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Context | None))

    async def tool(ctx: Context | None = None, wait: bool = True, **arguments: Any) -> dict[str, Any]:
        # Unset arguments are left out, so the config's defaults apply (and the log shows what was given).
        return await call(name, {k: v for k, v in arguments.items() if v is not None}, ctx, wait, stepped)

    tool.__name__, tool.__qualname__, tool.__doc__ = name, name, doc
    tool.__signature__ = inspect.Signature(params, return_annotation=dict[str, Any])
    tool.__annotations__ = {p.name: p.annotation for p in params} | {"return": dict[str, Any]}
    return tool

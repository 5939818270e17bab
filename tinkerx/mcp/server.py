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

    @server.tool()
    async def init_sft(
        examples_path: str,
        validation_split: float = 0.1,
        holdout_path: str | None = None,
        lr: float | None = None,
        lr_schedule: str | None = None,
        warmup_steps: int | None = None,
        lora_rank: int | None = None,
        batch_size: int | None = None,
        max_steps: int | None = None,
        validation_every: int | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Start a supervised fine-tuning run (replaces any run in progress) and measure the baseline.

        examples_path: a .jsonl file, one {"question": ..., "answer": ...} per line (answer = the
        reply to learn). validation_split: the fraction held out for validation loss. holdout_path:
        a .jsonl file for evaluate(); without it 100 examples (at most a quarter) are held out.
        lr / lr_schedule (constant | linear | cosine) / warmup_steps / batch_size / max_steps (the
        schedule's length) / lora_rank default to the method's and model's config. Returns data
        sizes, the baseline held-out accuracy and the run folder.
        """
        return await call("init_sft", _given("init_sft", locals()), ctx)

    @server.tool()
    async def init_grpo(
        prompts_path: str,
        reward: str = "numeric",
        group_size: int | None = None,
        groups_per_batch: int | None = None,
        lr: float | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        holdout_path: str | None = None,
        init_from: str | None = None,
        max_steps: int | None = None,
        eval_every: int | None = None,
        checkpoint_threshold: float | None = None,
        checkpoint_min_steps: int | None = None,
        lora_rank: int | None = None,
        seed: int | None = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Start a GRPO run on verifiable rewards (replaces any run in progress).

        prompts_path: a .jsonl file of {"question": ..., "answer": ...} (answer = the ground truth
        the reward checks). reward: a built-in name (numeric, exact_match, math_equivalence,
        multiple_choice) or the path of a .py file defining compute_reward(completion,
        ground_truth) -> float; it is tried on a few examples first and a broken one is refused.
        group_size: samples per prompt; groups_per_batch: prompts per iteration. init_from: a
        checkpoint name from save(), a checkpoint path, or tinker://... (start from SFT weights).
        eval_every: holdout evaluation every N iterations; with checkpoint_threshold, a checkpoint
        is saved whenever holdout reward reaches it (not before checkpoint_min_steps).
        """
        return await call("init_grpo", _given("init_grpo", locals()), ctx)

    @server.tool()
    async def train_sft_step(steps: int | None = None, epochs: float | None = None, wait: bool = True, ctx: Context | None = None) -> dict[str, Any]:
        """Train the SFT run for `steps` optimizer steps, or `epochs` passes over the data.

        Returns first/last train loss, the latest validation loss (and its recent history), the LR
        and overfitting_warning (non-null: stop or go back to a checkpoint). Reports progress per
        step; cancelling stops after the current step and keeps everything. wait=false returns a
        job id at once (see wait / cancel).
        """
        return await call("train_sft_step", _given("train_sft_step", locals()), ctx, wait, stepped=True)

    @server.tool()
    async def train_grpo_step(iterations: int = 1, wait: bool = True, ctx: Context | None = None) -> dict[str, Any]:
        """Run `iterations` GRPO iterations (sample groups, grade, update).

        Per iteration: reward_mean / reward_std, accuracy, all_0 / all_1 (groups with no signal),
        truncation_rate, datums_trained, and holdout figures when one was due; plus the update
        count. Reports progress per iteration; cancelling stops after the current one. wait=false
        returns a job id at once.
        """
        return await call("train_grpo_step", _given("train_grpo_step", locals()), ctx, wait, stepped=True)

    @server.tool()
    async def sample(
        prompts: list[str] | None = None,
        prompts_path: str | None = None,
        n: int = 1,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Sample `n` completions per prompt from the current weights, with the training prompt format.

        Give prompts (a short list of questions) or prompts_path (a .jsonl with "question" and
        optionally "answer": then each completion's reward is shown too). Look at samples often.
        """
        return await call("sample", _given("sample", locals()), ctx)

    @server.tool()
    async def evaluate(holdout_path: str | None = None, dataset: str | None = None, max_examples: int | None = None, wait: bool = True, ctx: Context | None = None) -> dict[str, Any]:
        """Held-out evaluation of the current weights (greedy, graded by the run's reward).

        No arguments: the run's own holdout. holdout_path: another .jsonl of question/answer.
        dataset: a configured data set (gsm8k, math, arithmetic, ...). Returns accuracy,
        reward_mean, truncation_rate and more; per-example records go to the run folder.
        """
        return await call("evaluate", _given("evaluate", locals()), ctx, wait)

    @server.tool()
    async def save(name: str, ctx: Context | None = None) -> dict[str, Any]:
        """Save the weights and optimizer state as checkpoint `name`; returns its path."""
        return await call("save", {"name": name}, ctx)

    @server.tool()
    async def load(name_or_path: str, with_optimizer: bool = True, ctx: Context | None = None) -> dict[str, Any]:
        """Load a checkpoint (a name from list_checkpoints, a local path, or tinker://...) into the
        current run's model; the step count stays where it is."""
        return await call("load", {"name_or_path": name_or_path, "with_optimizer": with_optimizer}, ctx)

    @server.tool()
    async def finish(ctx: Context | None = None) -> dict[str, Any]:
        """End the run: final held-out evaluation, final checkpoint, summary.json (and W&B closed).
        Returns the summary with baseline and final figures."""
        return await call("finish", {}, ctx)

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


def _given(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The session method's arguments among a tool's ``locals()``; unset ones (None) are left out."""
    accepted = inspect.signature(getattr(TrainingSession, tool)).parameters
    return {k: v for k, v in arguments.items() if k in accepted and k not in ("self", "progress", "stop") and v is not None}

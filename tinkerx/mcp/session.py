"""The agent's training session: one run at a time, driven a few steps per tool call.

Each public method here is one MCP tool (same name, same keyword arguments), which is also how
``tinkerx.mcp.replay`` plays a recorded session back without the agent. A run's whole lifecycle
(its folder, building, steps with resume points, finishing, closing, failures) is the CLI's own
``tinkerx.lifecycle.RunLifecycle``, and the run's method is used only through the ``Method``
protocol, so any method the CLI runs can be started here (``start_run``). This class translates
tool calls into lifecycle and method calls, and keeps the session folder.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf.errors import MissingMandatoryValue

from tinkerx.errors import ConfigError, UserError
from tinkerx.lifecycle import RunLifecycle
from tinkerx.mcp import debug
from tinkerx.mcp.config import compose_run
from tinkerx.mcp.guided import GuidedTools, Progress, StopRequested
from tinkerx.mcp.looking import evaluate_elsewhere, sample_completions
from tinkerx.mcp.records import SessionRecords
from tinkerx.runs.checkpoints import checkpoint_base_model, resolve_checkpoint
from tinkerx.runs.rng import global_rng_state, set_global_rng_state

ROWS_SHOWN = 10  # a training call returns its last rows; all of them are in the run's metrics.jsonl


@dataclass
class SessionRun:
    """One run of the session: a run folder in the CLI's format inside the session folder."""

    kind: str  # the method group's choice: sft, grpo, dpo, distill, ...
    groups: list[str]
    values: dict[str, Any]
    life: RunLifecycle
    evaluations: int = 0

    @property
    def method(self) -> Any:
        return self.life.method

    @property
    def pipeline(self) -> Any:
        return self.life.pipeline

    @property
    def run_dir(self) -> Path:
        return self.life.run_dir


class TrainingSession(GuidedTools):
    def __init__(self, session_dir: Path, overrides: list[str]) -> None:
        self.dir = Path(session_dir).resolve()
        self.overrides = list(overrides)  # the server's own: backend=..., model=..., logger=...
        self.records = SessionRecords(self.dir)
        self.records.write_session(self.overrides)
        debug.install(self.dir)
        self.run: SessionRun | None = None
        self.runs_started = 0
        self.checkpoints: list[dict[str, Any]] = []
        self.started = time.time()

    # ---- starting a run --------------------------------------------------------------------
    def start_run(self, overrides: list[str]) -> dict[str, Any]:
        """Start a run of any method, configured exactly as on the command line (replaces any run in
        progress) and measure its baseline.

        overrides: what you would type after `python -m tinkerx`, e.g. ["method=dpo",
        "dataset=arithmetic", "training.max_steps=20"] or ["experiment=distill_tiny_on_policy"];
        the server's own (backend, model) come first, so yours win. Methods: sft, grpo, dpo,
        distill, debate, eval. Then train_step, evaluate, sample, save, finish. Returns data sizes,
        total_steps, the baseline and the run folder.
        """
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ConfigError(f"overrides must be a list of strings such as 'method=dpo', got {overrides!r}")
        return self._start([*self.overrides, *overrides], {})

    def _start(self, groups: list[str], values: dict[str, Any]) -> dict[str, Any]:
        """A new run through the lifecycle. It is built (every value, the data and the reward
        checked) while the run in progress still stands, so a refused start costs that run nothing
        (not even a draw from the global random generators); for a moment both are open."""
        log = debug.area("init")
        values = {k: v for k, v in values.items() if v is not None}
        cfg, kind = compose_run(groups, values)
        run_dir = self.dir / f"run{self.runs_started + 1:02d}_{kind}"
        log.debug("composing %s with %s and %s", run_dir.name, groups, values)
        rng = global_rng_state()
        life = None
        try:
            life = RunLifecycle.open(cfg, run_dir)
            life.build()
        except BaseException as error:
            if life is not None:
                life.discard()
            else:  # the config did not resolve: only the folder was made
                shutil.rmtree(run_dir, ignore_errors=True)
            set_global_rng_state(rng)
            _reraise(error)
        self.close("replaced")
        self.runs_started += 1
        try:
            life.begin()
        except BaseException as error:
            # Nothing was trained: the next run takes this number, so a replay (which skips failed calls) agrees.
            life.discard()
            self.runs_started -= 1
            _reraise(error)
        self.run = run = SessionRun(kind, groups, values, life)
        data = run.pipeline.dataset
        log.debug("run %s ready: %d train examples", run_dir.name, len(data.train))
        return {
            "method": kind,
            "run_dir": str(run_dir),
            "train_examples": len(data.train),
            "validation_examples": len(data.validation),
            "holdout_examples": len(data.test),
            "total_steps": run.method.total_steps,
            "baseline": run.method.summary().get("baseline"),
            "reward_check": getattr(run.pipeline.reward, "reference_check", None),
        }

    # ---- training --------------------------------------------------------------------------
    def train_step(self, steps: int = 1, progress: Progress | None = None, stop: StopRequested | None = None) -> dict[str, Any]:
        """Train the run in progress (any method) for `steps` steps of its schedule.

        Returns how far it got and the metrics of the last steps (all are in the run's
        metrics.jsonl). A resume point is saved every training.save_every steps.
        """
        run = self._active()
        rows = self._train(run, "train_step", steps, progress, stop)
        return {**self._position(run, rows, steps), "metrics": rows[-ROWS_SHOWN:]}

    def _train(self, run: SessionRun, tool: str, steps: int, progress: Progress | None, stop: StopRequested | None) -> list[dict[str, Any]]:
        method, log = run.method, debug.area("training")
        if steps < 1:
            raise ConfigError(f"the number of steps must be >= 1, got {steps}")
        if run.life.steps_left <= 0:
            raise UserError(f"all {method.total_steps} steps of this run's schedule are done: call finish(), or start again with a larger max_steps")
        steps = min(steps, run.life.steps_left)
        rows: list[dict[str, Any]] = []

        def on_step(metrics: dict[str, Any]) -> None:
            rows.append({"step": method.step_index, **metrics})
            log.debug("step %d: %s", method.step_index, metrics)
            self.records.heartbeat(tool, run=run.run_dir.name, step=method.step_index, done=len(rows), total=steps)
            if progress is not None:
                progress(len(rows), steps, metrics)

        try:
            run.life.drive(steps, stop, on_step)
        except BaseException as error:
            # The step did not complete: the run ends here, its files and resume points kept.
            run.life.fail(error)
            raise
        if len(rows) < steps:
            log.debug("%s stopped on request after %d of %d steps", tool, len(rows), steps)
        return rows

    def _position(self, run: SessionRun, rows: list[dict[str, Any]], asked: int) -> dict[str, Any]:
        return {
            "steps_run": len(rows),
            "stopped_early": len(rows) < min(asked, len(rows) + run.life.steps_left),
            "step": run.method.step_index,
            "total_steps": run.method.total_steps,
        }

    # ---- looking at the model --------------------------------------------------------------
    def sample(
        self,
        prompts: list[str] | None = None,
        prompts_path: str | None = None,
        n: int = 1,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Sample `n` completions per prompt from the current weights, with the training prompt format.

        Give prompts (a short list of questions) or prompts_path (a .jsonl with "question" and
        optionally "answer": then each completion's reward is shown too). Look at samples often.
        """
        run = self._active()
        step = run.method.step_index
        rows = sample_completions(run.method.sampling_client(), run.pipeline, prompts, prompts_path, n, max_tokens, temperature, seed)
        run.pipeline.recorder.write_jsonl("sampled.jsonl", [{"at_step": step, **r} for r in rows], append=True)
        debug.area("sampling").debug("sampled %d prompts x %d at step %d", len(rows), n, step)
        return {"step": step, "samples": rows}

    def evaluate(self, holdout_path: str | None = None, dataset: str | None = None, max_examples: int | None = None) -> dict[str, Any]:
        """Held-out evaluation of the current weights (greedy, graded by the run's reward).

        No arguments: the run's own holdout. holdout_path: another .jsonl of question/answer.
        dataset: a configured data set (gsm8k, math, arithmetic, ...). Returns accuracy,
        reward_mean, truncation_rate and more; per-example records go to the run folder.
        """
        run = self._active()
        run.evaluations += 1
        step = run.method.step_index
        name = f"mcp_{run.evaluations:03d}_step_{step:06d}"
        if holdout_path is None and dataset is None and max_examples is None:
            metrics = run.method.evaluate(name)
        else:
            metrics = evaluate_elsewhere(run, name, holdout_path, dataset, max_examples)
        run.pipeline.recorder.log_metrics(step, {f"eval/{k}": v for k, v in metrics.items()})
        return {"step": step, "metrics": metrics, "records": str(run.run_dir / "eval" / f"{name}.jsonl")}

    # ---- checkpoints -----------------------------------------------------------------------
    def save(self, name: str) -> dict[str, Any]:
        """Save the weights and optimizer state as checkpoint `name`; returns its path."""
        run = self._active()
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"checkpoint name must be a plain name (no '/'), got {name!r}")
        entry = {"name": name, "path": run.method.save(name)["policy"], "run": run.run_dir.name, "step": run.method.step_index}
        self.checkpoints.append(entry)
        self.records.write_checkpoints(self.list_checkpoints()["checkpoints"])
        debug.area("checkpoints").debug("saved %s", entry)
        return entry

    def load(self, name_or_path: str, with_optimizer: bool = True) -> dict[str, Any]:
        """Load a checkpoint (a name from list_checkpoints, a local path, or tinker://...) into the
        current run's model; the step count stays where it is."""
        run = self._active()
        path = self._checkpoint_path(name_or_path)
        trained_from = checkpoint_base_model(path)
        if trained_from and trained_from != run.pipeline.base_model:
            raise ConfigError(f"{name_or_path} was trained from {trained_from}, but this run's model is {run.pipeline.base_model}")
        run.method.load(path, with_optimizer)
        debug.area("checkpoints").debug("loaded %s (optimizer: %s) at step %d", path, with_optimizer, run.method.step_index)
        return {"loaded": path, "with_optimizer": with_optimizer, "step": run.method.step_index}

    def _checkpoint_path(self, name_or_path: str) -> str:
        named = [c["path"] for c in self.list_checkpoints()["checkpoints"] if c["name"] == name_or_path]
        return named[-1] if named else resolve_checkpoint(name_or_path, "checkpoint")

    def list_checkpoints(self) -> dict[str, Any]:
        automatic = [{**c, "run": self.run.run_dir.name} for c in self.run.method.saved_checkpoints()] if self.run is not None else []
        return {"checkpoints": self.checkpoints + automatic}

    # ---- the session -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        run = self.run
        status: dict[str, Any] = {"session_dir": str(self.dir), "elapsed_s": round(time.time() - self.started, 1)}
        if run is None:
            return {**status, "method": None, "hint": "start with start_run, init_sft or init_grpo"}
        history = run.pipeline.recorder.history
        return {
            **status,
            "method": run.kind,
            "run_dir": str(run.run_dir),
            "finished": run.life.ended,
            "step": run.method.step_index,
            "total_steps": run.method.total_steps,
            "run_elapsed_s": round(time.time() - run.life.started, 1),
            "last_metrics": history[-1] if history else None,
            "checkpoints": self.list_checkpoints()["checkpoints"],
            # What the run has spent so far: tokens by kind and model, the cost or why it is unknown.
            "usage": run.life.meter.summary() if run.life.meter is not None else None,
            **({"budget_reached": run.life.budget_stop} if run.life.budget_stop else {}),
        }

    def finish(self) -> dict[str, Any]:
        """End the run: final held-out evaluation, final checkpoint, summary.json (and W&B closed).
        Returns the summary with baseline and final figures."""
        run = self._active()
        summary = run.life.finish()
        self.records.write_checkpoints(self.list_checkpoints()["checkpoints"])
        return summary

    def close(self, status: str = "closed") -> None:
        """Ends the current run without its final evaluation (a new start, or the server stopping);
        ``tinkerx.resume`` can continue it from its last resume point."""
        run = self.run
        if run is not None and not run.life.ended:
            run.life.stop(status)

    def _active(self, kind: str | None = None) -> SessionRun:
        run = self.run
        if run is None or run.life.ended:
            raise UserError("no run in progress: start one with start_run, init_sft or init_grpo")
        if kind is not None and run.kind != kind:
            raise UserError(f"the run in progress is {run.kind}; this tool needs {kind} (use train_step, or start one with init_{kind})")
        return run


def _reraise(error: BaseException) -> None:
    if isinstance(error, MissingMandatoryValue):
        raise ConfigError(f"{error.full_key} is required and has no default") from None
    raise error

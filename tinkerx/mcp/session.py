"""The agent's training session: one method object at a time, driven step by step.

Each public method here is one MCP tool (same name, same keyword arguments), which is also how
``tinkerx.mcp.replay`` plays a recorded session back without the agent. The training, sampling and
scoring all happen in the method, backend and evaluator objects ``tinkerx.build`` makes, exactly
as for the CLI; this class only decides which of them to call, and keeps the session folder.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tinkerx.errors import ConfigError, UserError
from tinkerx.mcp import debug, reports
from tinkerx.mcp.config import compose, reward_choice
from tinkerx.mcp.records import SessionRecords

Progress = Callable[[int, int, dict[str, Any]], None]  # (done, total, the step's metrics)
StopRequested = Callable[[], bool]


@dataclass
class Run:
    """One method's run: a folder in the CLI's format inside the session folder."""

    kind: str
    run_dir: Path
    groups: list[str]
    values: dict[str, Any]
    method: Any
    pipeline: Any
    closers: list[Any]
    started: float = field(default_factory=time.time)
    finished: bool = False
    evaluations: int = 0


class TrainingSession:
    def __init__(self, session_dir: Path, overrides: list[str]) -> None:
        self.dir = Path(session_dir).resolve()
        self.overrides = list(overrides)  # the server's own: backend=..., model=..., logger=...
        self.records = SessionRecords(self.dir)
        self.records.write_session(self.overrides)
        debug.install(self.dir)
        self.run: Run | None = None
        self.runs_started = 0
        self.checkpoints: list[dict[str, Any]] = []
        self.started = time.time()

    # ---- starting a run --------------------------------------------------------------------
    def init_sft(
        self,
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
    ) -> dict[str, Any]:
        """Start a supervised fine-tuning run (replaces any run in progress) and measure the baseline.

        examples_path: a .jsonl file, one {"question": ..., "answer": ...} per line (answer = the
        reply to learn). validation_split: the fraction held out for validation loss. holdout_path:
        a .jsonl file for evaluate(); without it 100 examples (at most a quarter) are held out.
        lr / lr_schedule (constant | linear | cosine) / warmup_steps / batch_size / max_steps (the
        schedule's length) / lora_rank default to the method's and model's config. Returns data
        sizes, the baseline held-out accuracy, the reward check and the run folder.
        """
        if not 0 < validation_split < 0.5:
            raise ConfigError(f"validation_split must be in (0, 0.5), got {validation_split}")
        values = {
            "dataset.path": _existing(examples_path, "examples_path"),
            "dataset.test_path": _existing(holdout_path, "holdout_path") if holdout_path else None,
            "dataset.validation_size": max(1, int(validation_split * _count_lines(examples_path))),
            "optim.lr": lr, "optim.schedule": lr_schedule, "optim.warmup_steps": warmup_steps,
            "model.lora_rank": lora_rank, "training.batch_size": batch_size, "training.max_steps": max_steps,
            "method.validation_every": validation_every, "sampling.max_tokens": max_tokens, "seed": seed,
        }  # fmt: skip
        return self._init("sft", [], values)

    def init_grpo(
        self,
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
    ) -> dict[str, Any]:
        """Start a GRPO run on verifiable rewards (replaces any run in progress).

        prompts_path: a .jsonl file of {"question": ..., "answer": ...} (answer = the ground truth
        the reward checks). reward: a built-in name (numeric, exact_match, math_equivalence,
        multiple_choice) or the path of a .py file defining compute_reward(completion,
        ground_truth) -> float; it is tried on a few examples first and a broken one is refused
        (the run in progress stays). group_size: samples per prompt; groups_per_batch: prompts per
        iteration. init_from: a checkpoint name from save(), a checkpoint path, or tinker://...
        (e.g. the SFT weights). eval_every: holdout evaluation every N iterations; with
        checkpoint_threshold, a checkpoint is saved whenever the holdout reward reaches it (not
        before checkpoint_min_steps).
        """
        reward_groups, reward_values = reward_choice(reward)
        values = {
            "dataset.path": _existing(prompts_path, "prompts_path"),
            "dataset.test_path": _existing(holdout_path, "holdout_path") if holdout_path else None,
            **reward_values,
            "method.group_size": group_size, "training.batch_size": groups_per_batch, "optim.lr": lr,
            "sampling.max_tokens": max_tokens, "sampling.temperature": temperature,
            "method.init_from": self._checkpoint_path(init_from) if init_from else None,
            "training.max_steps": max_steps, "training.eval_every": eval_every,
            "method.checkpoint_threshold": checkpoint_threshold, "method.checkpoint_min_steps": checkpoint_min_steps,
            "model.lora_rank": lora_rank, "seed": seed,
        }  # fmt: skip
        return self._init("grpo", reward_groups, values)

    def _init(self, kind: str, groups: list[str], values: dict[str, Any]) -> dict[str, Any]:
        from omegaconf import OmegaConf
        from omegaconf.errors import MissingMandatoryValue

        from tinkerx.app import SOURCE_DIR
        from tinkerx.build import build
        from tinkerx.runs.environment import environment

        log = debug.area("init")
        groups = [*self.overrides, f"method={kind}", "dataset=jsonl", *groups]
        values = {k: v for k, v in values.items() if v is not None}
        cfg = compose(groups, values)
        reward_check = _check_reward(cfg)  # before the run in progress is closed: a bad reward costs nothing
        self.close("replaced")
        self.runs_started += 1
        run_dir = self.dir / f"run{self.runs_started:02d}_{kind}"
        log.debug("composing %s with %s and %s", run_dir.name, groups, values)
        try:
            run_dir.mkdir(parents=True)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            (run_dir / "environment.json").write_text(json.dumps(environment(SOURCE_DIR), indent=2) + "\n")
            method, pipeline, closers = build(cfg, run_dir)
            self.run = Run(kind, run_dir, groups, values, method, pipeline, closers)
            method.setup(pipeline)
            start_metrics = method.start()
            if start_metrics:
                pipeline.recorder.log_metrics(0, start_metrics)
        except MissingMandatoryValue as e:
            self._abandon(run_dir)
            raise ConfigError(f"{e.full_key} is required and has no default") from None
        except BaseException:
            self._abandon(run_dir)
            raise
        log.debug("run %s ready: %d train examples", run_dir.name, len(pipeline.dataset.train))
        return {
            "method": kind,
            "run_dir": str(run_dir),
            "train_examples": len(pipeline.dataset.train),
            "validation_examples": len(pipeline.dataset.validation),
            "holdout_examples": len(pipeline.dataset.test),
            "total_steps": method.total_steps,
            "baseline": method.summary().get("baseline"),
            "reward_check": reward_check,
        }

    def _abandon(self, run_dir: Path) -> None:
        """Nothing was trained: close what was opened and remove the half-made folder."""
        if self.run is not None and self.run.run_dir == run_dir:
            self._close_closers(self.run)
            self.run = None
        shutil.rmtree(run_dir, ignore_errors=True)
        self.runs_started -= 1  # the next run takes this number: a replay, which skips failed calls, agrees

    # ---- training --------------------------------------------------------------------------
    def train_sft_step(self, steps: int | None = None, epochs: float | None = None, progress: Progress | None = None, stop: StopRequested | None = None) -> dict[str, Any]:
        """Train the SFT run for `steps` optimizer steps, or `epochs` passes over the data.

        Returns first/last train loss, the latest validation loss (and its recent history), the LR
        and overfitting_warning (non-null: stop, or go back to a checkpoint).
        """
        run = self._active("sft")
        if (steps is None) == (epochs is None):
            raise ConfigError("give exactly one of steps or epochs")
        if epochs is not None:
            steps = math.ceil(epochs * len(run.method.train) / run.pipeline.training.batch_size)
        rows = self._train(run, "train_sft_step", steps, progress, stop)
        return {**self._position(run, rows, steps), **reports.sft(rows, run.pipeline.recorder.history)}

    def train_grpo_step(self, iterations: int = 1, progress: Progress | None = None, stop: StopRequested | None = None) -> dict[str, Any]:
        """Run `iterations` GRPO iterations (sample groups, grade, update).

        Per iteration: reward_mean / reward_std, accuracy, all_0 / all_1 (groups with no signal),
        truncation_rate, datums_trained, and holdout figures when one was due; plus update counts
        and the automatic checkpoints.
        """
        run = self._active("grpo")
        rows = self._train(run, "train_grpo_step", iterations, progress, stop)
        return {**self._position(run, rows, iterations), **reports.grpo(rows, run.method.summary())}

    def _train(self, run: Run, tool: str, steps: int, progress: Progress | None, stop: StopRequested | None) -> list[dict[str, Any]]:
        method, log = run.method, debug.area("training")
        if steps < 1:
            raise ConfigError(f"the number of steps must be >= 1, got {steps}")
        remaining = method.total_steps - method.step_index
        if remaining <= 0:
            raise UserError(f"all {method.total_steps} steps of this run's schedule are done: call finish(), or init again with a larger max_steps")
        steps = min(steps, remaining)
        rows: list[dict[str, Any]] = []
        for done in range(1, steps + 1):
            if stop is not None and stop():
                log.debug("%s stopped on request after %d of %d steps", tool, done - 1, steps)
                break
            metrics = method.step()
            run.pipeline.recorder.log_metrics(method.step_index, metrics)
            rows.append({"step": method.step_index, **metrics})
            log.debug("step %d: %s", method.step_index, metrics)
            self.records.heartbeat(tool, run=run.run_dir.name, step=method.step_index, done=done, total=steps)
            if progress is not None:
                progress(done, steps, metrics)
        return rows

    def _position(self, run: Run, rows: list[dict[str, Any]], asked: int) -> dict[str, Any]:
        return {
            "steps_run": len(rows),
            "stopped_early": len(rows) < min(asked, len(rows) + run.method.total_steps - run.method.step_index),
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
        from tinkerx.mcp.looking import sample_completions

        run = self._active()
        rows = sample_completions(run.method.client, run.pipeline, prompts, prompts_path, n, max_tokens, temperature, seed)
        run.pipeline.recorder.write_jsonl("sampled.jsonl", [{"at_step": run.method.step_index, **r} for r in rows], append=True)
        debug.area("sampling").debug("sampled %d prompts x %d at step %d", len(rows), n, run.method.step_index)
        return {"step": run.method.step_index, "samples": rows}

    def evaluate(self, holdout_path: str | None = None, dataset: str | None = None, max_examples: int | None = None) -> dict[str, Any]:
        """Held-out evaluation of the current weights (greedy, graded by the run's reward).

        No arguments: the run's own holdout. holdout_path: another .jsonl of question/answer.
        dataset: a configured data set (gsm8k, math, arithmetic, ...). Returns accuracy,
        reward_mean, truncation_rate and more; per-example records go to the run folder.
        """
        from tinkerx.mcp.looking import evaluate_elsewhere

        run = self._active()
        run.evaluations += 1
        name = f"mcp_{run.evaluations:03d}_step_{run.method.step_index:06d}"
        if holdout_path is None and dataset is None and max_examples is None:
            metrics = run.method.evaluate(name)
        else:
            metrics = evaluate_elsewhere(run, name, holdout_path, dataset, max_examples)
        run.pipeline.recorder.log_metrics(run.method.step_index, {f"eval/{k}": v for k, v in metrics.items()})
        return {"step": run.method.step_index, "metrics": metrics, "records": str(run.run_dir / "eval" / f"{name}.jsonl")}

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
        from tinkerx.runs.checkpoints import checkpoint_base_model

        run = self._active()
        path = self._checkpoint_path(name_or_path)
        trained_from = checkpoint_base_model(path)
        if trained_from and trained_from != run.pipeline.base_model:
            raise ConfigError(f"{name_or_path} was trained from {trained_from}, but this run's model is {run.pipeline.base_model}")
        client = run.method.client
        (client.load_state_with_optimizer if with_optimizer else client.load_state)(path).result()
        debug.area("checkpoints").debug("loaded %s (optimizer: %s) at step %d", path, with_optimizer, run.method.step_index)
        return {"loaded": path, "with_optimizer": with_optimizer, "step": run.method.step_index}

    def _checkpoint_path(self, name_or_path: str) -> str:
        from tinkerx.runs.checkpoints import resolve_checkpoint

        named = [c["path"] for c in self.list_checkpoints()["checkpoints"] if c["name"] == name_or_path]
        return named[-1] if named else resolve_checkpoint(name_or_path, "checkpoint")

    def list_checkpoints(self) -> dict[str, Any]:
        automatic = []
        if self.run is not None:
            for c in self.run.method.summary().get("auto_checkpoints", []):
                automatic.append({"name": f"auto_step_{c['step']:06d}", "path": c["path"], "run": self.run.run_dir.name, "step": c["step"], "holdout_reward": c["holdout_reward"]})
        return {"checkpoints": self.checkpoints + automatic}

    # ---- the session -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        run = self.run
        status: dict[str, Any] = {"session_dir": str(self.dir), "elapsed_s": round(time.time() - self.started, 1)}
        if run is None:
            return {**status, "method": None, "hint": "start with init_sft or init_grpo"}
        history = run.pipeline.recorder.history
        return {
            **status,
            "method": run.kind,
            "run_dir": str(run.run_dir),
            "finished": run.finished,
            "step": run.method.step_index,
            "total_steps": run.method.total_steps,
            "run_elapsed_s": round(time.time() - run.started, 1),
            "last_metrics": history[-1] if history else None,
            "checkpoints": self.list_checkpoints()["checkpoints"],
        }

    def finish(self) -> dict[str, Any]:
        """End the run: final held-out evaluation, final checkpoint, summary.json (and W&B closed).
        Returns the summary with baseline and final figures."""
        run = self._active()
        summary = run.method.finish()
        if run.kind == "grpo" and run.pipeline.evaluator is not None:
            # GRPO evaluates on its eval_every schedule; the agent stops wherever it likes.
            summary["final"] = run.method.evaluate("final")
        summary = {"method": run.kind, "run_dir": str(run.run_dir), **summary, "status": "finished", "wall_time_s": time.time() - run.started}
        run.pipeline.recorder.finish(summary)  # summary.json; closes W&B
        self._close_closers(run)
        run.finished = True
        self.records.write_checkpoints(self.list_checkpoints()["checkpoints"])
        return summary

    def close(self, status: str = "closed") -> None:
        """Ends the current run without its final evaluation (a new init, or the server stopping)."""
        run = self.run
        if run is None or run.finished:
            return
        run.pipeline.recorder.finish({"method": run.kind, "run_dir": str(run.run_dir), **run.method.summary(), "status": status})
        self._close_closers(run)
        run.finished = True

    @staticmethod
    def _close_closers(run: Run) -> None:
        for closer in reversed(run.closers):
            closer.close()
        run.closers = []

    def _active(self, kind: str | None = None) -> Run:
        run = self.run
        if run is None or run.finished:
            raise UserError("no run in progress: start one with init_sft or init_grpo")
        if kind is not None and run.kind != kind:
            raise UserError(f"the run in progress is {run.kind}; this tool needs {kind} (start one with init_{kind})")
        return run


def _check_reward(cfg: Any) -> dict[str, Any] | None:
    """The run's reward tried on a few training examples' reference answers; UserError if it cannot run."""
    from tinkerx.build import instantiate
    from tinkerx.rewards.guarded import validate_reward

    if cfg.get("reward") is None:
        return None
    reward = instantiate(cfg.reward, "reward")
    examples = instantiate(cfg.dataset, "dataset").train[:4]
    scores = validate_reward(reward, examples)
    debug.area("reward").debug("reward %s on %d reference answers: %s", reward.name, len(examples), scores)
    return {"reward": reward.name, "reference_answers": [e.solution or e.answer for e in examples], "scores": scores}


def _existing(path: str, argument: str) -> str:
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(f"{argument}: no file at {file}")
    return str(file)


def _count_lines(path: str) -> int:
    with Path(path).expanduser().open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())

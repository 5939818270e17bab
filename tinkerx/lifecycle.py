"""One run's lifecycle, the same for every front door (the CLI, ``tinkerx.resume``, the MCP server).

``RunLifecycle.open`` makes (or reopens) the run folder, ``start`` builds the method and measures the
baseline at step 0, ``step`` / ``drive`` train with periodic resume points, and the run ends in one
of three ways: ``finish`` (final evaluation, ``summary.json``), ``stop`` (a resume point and
``status: interrupted``, or another status such as ``replaced``), or ``fail`` (the failure recorded).
``close`` runs the closers; every ending calls it, and calling it twice is harmless.

Each step's line also says what it spent (``usage/``, read from the meter on the service ``build``
hands out, ``tinkerx.runs.usage``). A step that reaches ``training.max_cost`` or ``training.max_tokens``
saves a resume point and ends the driving; ``finish`` then ends the run with ``status:
budget_reached`` instead of its final evaluation, and ``tinkerx.resume`` continues it with a larger budget.

Out of memory (``tinkerx.errors.OutOfMemoryError``): the run relies on its last periodic resume
point (``training.save_every``) rather than saving one after the failed step, because that step may
already have advanced the method's data position and random numbers: a point saved then would not
continue the run exactly. ``fail`` keeps every file and writes ``summary.json`` with ``status:
failed`` and the reason, so ``python -m tinkerx.resume RUN_DIR`` (with a smaller batch, say) goes on
from the last resume point.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from tinkerx.build import build
from tinkerx.errors import OutOfMemoryError
from tinkerx.pipeline import Method, Pipeline, ResumeState
from tinkerx.runs import bands, resume_points
from tinkerx.runs.display import console
from tinkerx.runs.environment import SOURCE_DIR, environment
from tinkerx.runs.compare import metric_rows
from tinkerx.runs.faults import kill_point
from tinkerx.runs.rng import global_rng_state, set_global_rng_state
from tinkerx.runs.status import BUDGET_REACHED, FAILED_MARKER
from tinkerx.runs.usage import budget_reached

OnStep = Callable[[dict[str, Any]], None]  # called with each step's metrics, after they are recorded
StopRequested = Callable[[], bool]


class RunLifecycle:
    def __init__(self, cfg: DictConfig, run_dir: Path, point: resume_points.ResumePoint | None, started: float) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.point = point  # the resume point this session continues from, None for a fresh run
        self.started = started
        self.method: Method | None = None
        self.pipeline: Pipeline | None = None
        self.closers: list[Any] = []
        self.ended = False
        self.bands = bands.declared(cfg)  # reference bands, refused here (one line) if they name an unrecorded metric
        self.budget_stop: str | None = None  # why a budget stopped the run (training.max_cost / max_tokens)

    # ---- opening and starting ----------------------------------------------------------------
    @classmethod
    def open(cls, cfg: DictConfig, run_dir: Path, resume: bool = False) -> "RunLifecycle":
        """A fresh run folder (the resolved ``config.yaml``, ``environment.json``), or, with ``resume``,
        the newest intact resume point of the run already in ``run_dir``."""
        started = time.time()
        bands.declared(cfg)  # a band naming a metric this run does not record: refused before the folder is written
        run_dir.mkdir(parents=True, exist_ok=True)
        point = None
        if resume:
            point = resume_points.latest_point(run_dir, warn=lambda m: console.print(f"[yellow]warning:[/yellow] {m}"))
            _append_jsonl(run_dir / "resumes.jsonl", {"at_step": point.step, "started": started, "environment": environment(SOURCE_DIR)})
        else:
            # Resolved, unlike Hydra's own .hydra/config.yaml: exactly the values this run used.
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            _write_json(run_dir / "environment.json", environment(SOURCE_DIR))
        return cls(cfg, run_dir, point, started)

    @classmethod
    def of(cls, method: Method, pipeline: Pipeline, point: resume_points.ResumePoint | None = None) -> "RunLifecycle":
        """The lifecycle of a method already built (by a test or a benchmark that calls ``build`` itself)."""
        run = cls(None, pipeline.run_dir, point, time.time())
        run.method, run.pipeline = method, pipeline
        return run

    def start(self) -> dict[str, Any] | None:
        """``build``, then ``begin``."""
        self.build()
        return self.begin()

    def build(self) -> None:
        """The method and its pipeline from the config (``tinkerx.build``): every value, the data and
        the reward are checked here, before any step."""
        self.method, self.pipeline, self.closers = build(self.cfg, self.run_dir)

    def begin(self) -> dict[str, Any] | None:
        """Sets the method up (from the resume point, if any) and, for a fresh run, records the work
        before the first step (the baseline evaluation) as step 0; returns those metrics."""
        state = restore(self.point, self.pipeline) if self.point is not None else None
        if state is not None:
            console.print(f"resuming at step {state.step} from {self.point.folder}")
            if self.meter is not None:
                self.meter.restore(_spent_before(self.pipeline.run_dir, self.point.step), unread=self.point.usage_unread)
        self.method.setup(self.pipeline, state)
        if state is not None:
            return None
        start_metrics = self.method.start()
        if start_metrics:
            start_metrics = {**start_metrics, **self._usage_metrics()}
            self.pipeline.recorder.log_metrics(0, start_metrics)
        kill_point("started", 0)
        return start_metrics

    # ---- what the run spends ------------------------------------------------------------------
    @property
    def meter(self) -> Any:
        """The run's ``UsageMeter`` (on the metered service ``build`` made), None for a service built otherwise."""
        return getattr(self.pipeline.service, "meter", None) if self.pipeline is not None else None

    def _usage_metrics(self) -> dict[str, Any]:
        # The local backend's prefix cache counters (sample/prefix_cache_*); other services have none.
        cache = getattr(self.pipeline.service, "prefix_cache_metrics", None) if self.pipeline is not None else None
        return {**(self.meter.step_metrics() if self.meter is not None else {}), **(cache() if callable(cache) else {})}

    def _check_budget(self) -> None:
        training = self.pipeline.training
        if self.meter is None or (training.max_cost is None and training.max_tokens is None):
            return
        self.budget_stop = budget_reached(self.meter.totals(), training.max_cost, training.max_tokens)

    # ---- training ----------------------------------------------------------------------------
    @property
    def steps_done(self) -> int:
        if self.method is not None and self.method.step_index:
            return self.method.step_index
        return self.point.step if self.point is not None else 0

    @property
    def steps_left(self) -> int:
        return self.method.total_steps - self.method.step_index

    def step(self) -> dict[str, Any]:
        """One step, recorded under its index (with its tokens, ``usage/``), and a resume point every
        ``training.save_every`` steps, or at once when the step reached a budget (``budget_stop``)."""
        method, p = self.method, self.pipeline
        metrics = {**method.step(), **self._usage_metrics()}
        kill_point("step", method.step_index)
        p.recorder.log_metrics(method.step_index, metrics)
        self._check_budget()
        every = p.training.save_every
        periodic = every and method.step_index % every == 0
        if method.step_index < method.total_steps and (periodic or self.budget_stop):
            self.save_resume_point()
        return metrics

    def drive(self, steps: int | None = None, stop: StopRequested | None = None, on_step: OnStep | None = None) -> int:
        """Up to ``steps`` steps (default: to the end of the schedule), checking ``stop`` and the
        budget before each; returns the number of steps taken."""
        todo = self.steps_left if steps is None else min(steps, self.steps_left)
        for done in range(todo):
            if (stop is not None and stop()) or self.budget_stop:
                return done
            metrics = self.step()
            if on_step is not None:
                on_step(metrics)
        return todo

    def save_resume_point(self) -> Path:
        return save_resume_point(self.method, self.pipeline)

    # ---- ending --------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """The method's final evaluation and checkpoint, then ``summary.json``; closes the run. A run
        stopped by its budget skips both (they would spend more): ``status: budget_reached``."""
        if self.budget_stop and self.method.step_index < self.method.total_steps:
            console.print(f"[yellow]budget reached:[/yellow] {self.budget_stop}; saved a resume point at step {self.method.step_index} "
                          f"(python -m tinkerx.resume {self.run_dir} training.max_cost=... / training.max_tokens=... goes on)")  # fmt: skip
            return self._end({**self.method.summary(), "status": BUDGET_REACHED, "budget": self.budget_stop})
        return self._end({**self.method.finish(), "status": "finished"})

    def stop(self, status: str = "interrupted", **extra: Any) -> dict[str, Any]:
        """Ends the run between steps without its final evaluation. An interrupted run saves a resume
        point first, so ``tinkerx.resume`` continues it from here -- also at step 0: a stop asked for
        while the run was starting keeps what the start did (the baseline evaluation, DPO's reference
        logprobs, a distillation's teacher samples), which a fresh start would compute again."""
        if status == "interrupted":
            folder = self.save_resume_point()
            console.print(f"saved a resume point at step {self.method.step_index}: {folder}")
        return self._end({**self.method.summary(), "status": status, **extra})

    def fail(self, error: BaseException) -> None:
        """Records why the run failed. Before its first step nothing was trained: the folder is
        emptied but for ``failed.txt`` (and Hydra's ``.hydra/``, which sweep summaries and
        reproduction read). Later, everything is kept and ``summary.json`` says ``status: failed``."""
        self.close()
        reason = f"{type(error).__name__}: {' '.join(str(error).split()) or type(error).__name__}"
        if not self.steps_done and self.point is None:
            _leave_only_failure(self.run_dir, reason)
            return
        summary = {"method": getattr(self.method, "name", None), "run_dir": str(self.run_dir), "status": "failed", "error": reason,
                   "steps": self.steps_done, "wall_time_s": self._wall_time()}  # fmt: skip
        if self.meter is not None:
            summary["usage"] = self.meter.summary()
        if isinstance(error, OutOfMemoryError):
            summary["resume"] = f"python -m tinkerx.resume {self.run_dir}  (continues from the last resume point)"
        if self.pipeline is not None:
            self.pipeline.recorder.finish(summary)
        else:
            _write_json(self.run_dir / "summary.json", summary)

    def discard(self) -> None:
        """Closes a run that never started and removes its folder, as if it had never been asked for
        (the MCP server: a refused start is not replayed, so it must leave no trace)."""
        self.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def abandon(self, status: str, steps: int) -> None:
        """A step abandoned mid-way (a second Ctrl-C): keep what is written, say where it stopped."""
        self.pipeline.recorder.finish({"method": self.method.name, "run_dir": str(self.run_dir), "status": status, "steps": steps})
        self.close()

    def _wall_time(self) -> float:
        """This session's wall time, plus the earlier sessions' of a resumed run."""
        previous = _previous_wall_time(self.run_dir) if self.point is not None else 0.0
        return previous + time.time() - self.started

    def _end(self, summary: dict[str, Any]) -> dict[str, Any]:
        summary = {"method": self.method.name, "run_dir": str(self.run_dir), **summary, "wall_time_s": self._wall_time()}
        if summary.get("status") == "finished":  # a band is judged on the finished run, never fails it
            verdict, lines = bands.judge(self.bands, summary, self.run_dir)
            summary.update(verdict)
            for line in lines:
                console.print(f"[yellow]{line}[/yellow]")
        if self.meter is not None:
            usage = summary["usage"] = self.meter.summary()
            console.print(f"spent: {usage['total_tokens']:,} tokens (prefill {usage['prefill_tokens']:,}, sample {usage['sample_tokens']:,}, "
                          f"train {usage['train_tokens']:,}), cost {usage['cost']}")  # fmt: skip
        self.pipeline.recorder.finish(summary)  # summary.json; closes W&B
        self.close()
        return summary

    def close(self) -> None:
        self.ended = True
        closers, self.closers = self.closers, []
        for closer in reversed(closers):
            closer.close()


def save_resume_point(method: Method, p: Pipeline) -> Path:
    """Checkpoint every policy, then write the method's state beside it (see ``runs.resume_points``)."""
    checkpoints = method.save(f"step_{method.step_index:06d}")
    service_rng = getattr(p.service, "rng_state", None)
    rng = {"global": global_rng_state(), "service": service_rng() if service_rng else None}
    # At step 0 (a stop while the run started) the start's tokens are in no line yet: an uninterrupted
    # run reports them with step 1, so the resumed one must too. At a later point the step's line has
    # just read the meter; what is unread then (rollouts sent ahead) the resumed run spends again.
    meter = getattr(p.service, "meter", None)
    unread = meter.unread() if meter is not None and method.step_index == 0 else None
    folder = resume_points.write_point(p.run_dir, method.step_index, checkpoints, method.state(), rng, unread)
    resume_points.prune(p.run_dir, p.training.keep_checkpoints)
    return folder


def restore(point: resume_points.ResumePoint, p: Pipeline) -> ResumeState:
    set_global_rng_state(point.rng["global"])
    if point.rng.get("service") is not None and hasattr(p.service, "set_rng_state"):
        p.service.set_rng_state(point.rng["service"])
    # Lines written after the point (the steps that will run again) must not appear twice.
    p.recorder.truncate_after(point.step)
    return ResumeState(step=point.step, method_state=point.method_state, checkpoints=point.checkpoints)


def _leave_only_failure(run_dir: Path, reason: str) -> None:
    for child in run_dir.iterdir():
        if child.name == ".hydra":
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    (run_dir / FAILED_MARKER).write_text(reason + "\n")


def _spent_before(run_dir: Path, step: int) -> dict[str, Any]:
    """What the steps up to the resume point spent, summed from their ``usage/`` lines in
    ``metrics.jsonl`` (so a resumed run's totals equal an uninterrupted run's, line for line; steps
    after the point that an earlier session ran and this one runs again are not counted twice)."""
    sums = dict.fromkeys(("prefill", "sample", "train", "frozen"), 0)
    for row in metric_rows(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []:
        if row.get("step", 0) <= step:
            for kind in sums:
                sums[kind] += int(row.get(f"usage/{kind}_tokens") or 0)
    return {"by_model": {None: {f"{k}_tokens": sums[k] for k in ("prefill", "sample", "train")}}, "frozen_tokens": sums["frozen"]}


def _previous_wall_time(run_dir: Path) -> float:
    """Wall time of the sessions before this one, from the summary an interrupted session wrote."""
    try:
        return float(json.loads((run_dir / "summary.json").read_text()).get("wall_time_s", 0.0))
    except (OSError, ValueError, TypeError):
        return 0.0


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _append_jsonl(path: Path, obj: Any) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")

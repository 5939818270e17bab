"""The CLI's driver of a step-by-step method: progress, periodic resume points, clean stops.

``tinkerx.resume`` uses it too (with a resume point), and the MCP server drives the same method
objects step by step itself; none of them holds a training loop of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinkerx.pipeline import Method, Pipeline, ResumeState
from tinkerx.runs import resume_points
from tinkerx.runs.display import StepProgress, console
from tinkerx.runs.faults import kill_point
from tinkerx.runs.interrupts import StopRequests
from tinkerx.runs.rng import global_rng_state, set_global_rng_state


def save_resume_point(method: Method, p: Pipeline) -> Path:
    """Checkpoint every policy, then write the method's state beside it (see ``runs.resume_points``)."""
    checkpoints = method.save(f"step_{method.step_index:06d}")
    service_rng = getattr(p.service, "rng_state", None)
    rng = {"global": global_rng_state(), "service": service_rng() if service_rng else None}
    folder = resume_points.write_point(p.run_dir, method.step_index, checkpoints, method.state(), rng)
    resume_points.prune(p.run_dir, p.training.keep_checkpoints)
    return folder


def restore(point: resume_points.ResumePoint, p: Pipeline) -> ResumeState:
    set_global_rng_state(point.rng["global"])
    if point.rng.get("service") is not None and hasattr(p.service, "set_rng_state"):
        p.service.set_rng_state(point.rng["service"])
    # Lines written after the point (the steps that will run again) must not appear twice.
    p.recorder.truncate_after(point.step)
    return ResumeState(step=point.step, method_state=point.method_state, checkpoints=point.checkpoints)


def drive(method: Method, p: Pipeline, resume: resume_points.ResumePoint | None = None) -> dict[str, Any]:
    """Runs ``method`` to its end (or to a stop request) and returns its summary with a ``status``."""
    with StopRequests() as stop:
        state = restore(resume, p) if resume is not None else None
        if state is not None:
            console.print(f"resuming at step {state.step} from {resume.folder}")
        method.setup(p, state)
        if state is None:
            start_metrics = method.start()
            if start_metrics:
                p.recorder.log_metrics(0, start_metrics)
        every = p.training.save_every
        with StepProgress(method.total_steps, method.name, show=method.shown) as bar:
            bar.advance_to(method.step_index)
            while method.step_index < method.total_steps and not stop.requested:
                metrics = method.step()
                kill_point("step", method.step_index)
                p.recorder.log_metrics(method.step_index, metrics)
                bar.advance(metrics)
                if every and method.step_index % every == 0 and method.step_index < method.total_steps:
                    save_resume_point(method, p)
        if stop.requested:
            # Between steps: everything so far is saved, and the run can be resumed from here.
            if method.step_index:
                folder = save_resume_point(method, p)
                console.print(f"saved a resume point at step {method.step_index}: {folder}")
            return {**method.summary(), "status": "interrupted", "signal": stop.signal}
        return {**method.finish(), "status": "finished"}

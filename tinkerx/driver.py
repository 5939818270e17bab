"""The CLI's way of driving a run's lifecycle: a progress bar, and Ctrl-C / SIGTERM as stop requests.

``tinkerx.resume`` drives the same way; the MCP server drives the same ``RunLifecycle`` a few steps
per tool call instead. None of them holds a training loop of its own.
"""

from __future__ import annotations

from typing import Any

from tinkerx.lifecycle import RunLifecycle
from tinkerx.pipeline import Method, Pipeline
from tinkerx.runs.display import StepProgress
from tinkerx.runs.interrupts import StopRequests
from tinkerx.runs.resume_points import ResumePoint


def drive_run(run: RunLifecycle, build: bool = True) -> dict[str, Any]:
    """Starts ``run`` (``build``s it first unless its method exists), drives it to its end or to a stop
    request, and ends it; returns the recorded summary with its ``status``."""
    with StopRequests() as stop:
        run.start() if build else run.begin()
        method = run.method
        if method.total_steps:  # a step-less method (evaluation) gets no empty progress bar
            with StepProgress(method.total_steps, method.name, show=method.shown) as bar:
                bar.advance_to(method.step_index)
                run.drive(stop=lambda: stop.requested, on_step=bar.advance)
        if stop.requested:
            # Between steps: everything so far is saved, and the run can be resumed from here.
            return run.stop("interrupted", signal=stop.signal)
        return run.finish()


def drive(method: Method, p: Pipeline, resume: ResumePoint | None = None) -> dict[str, Any]:
    """Runs an already built ``method`` to its end (or to a stop request); its summary with a ``status``."""
    return drive_run(RunLifecycle.of(method, p, resume), build=False)

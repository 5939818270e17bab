"""A run from composed config to a finished run folder, and the continuation of an unfinished one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from tinkerx.driver import drive_run
from tinkerx.errors import UserError
from tinkerx.lifecycle import RunLifecycle
from tinkerx.runs import resume_points
from tinkerx.runs.display import comparison_table, console, key_value_table, show
from tinkerx.runs.interrupts import EXIT_CODES
from tinkerx.runs.legacy_targets import load_run_config
from tinkerx.runs.status import FAILED_MARKER, RESUME_ENV, run_status


def run(cfg: DictConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Runs (or, with ``resume``, continues) the run in ``run_dir``.

    A run that fails before its first step leaves only ``failed.txt`` saying why; one that fails
    later keeps everything written so far, with ``status: failed`` in ``summary.json``. A stop
    request (Ctrl-C, SIGTERM) ends with ``status: interrupted`` in ``summary.json`` and exit status
    130 / 143.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        decision = _fresh_or_resume(run_dir)
        if isinstance(decision, dict):
            return decision
        if decision:
            resume, cfg = True, load_run_config(run_dir / "config.yaml")
    lifecycle = RunLifecycle.open(cfg, run_dir, resume)
    try:
        summary = drive_run(lifecycle)
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt) and lifecycle.pipeline is not None:
            # A second Ctrl-C abandoned the step: keep what is written, say where it stopped.
            lifecycle.abandon("interrupted", lifecycle.steps_done)
            console.print(f"interrupted at step {lifecycle.steps_done}; run folder: {run_dir}")
            sys.exit(EXIT_CODES[signal.SIGINT])
        lifecycle.fail(error)
        raise
    _show(lifecycle.method.name, summary, run_dir)
    if summary.get("status") == "interrupted":
        console.print(f"resume with: python -m tinkerx.resume {run_dir}")
        sys.exit(EXIT_CODES.get(summary.get("signal"), 130))
    return summary


def _fresh_or_resume(run_dir: Path) -> bool | dict[str, Any]:
    """For a run about to start in ``run_dir``: False to start it, True to resume what is there, or a
    finished run's summary to skip it (the trials of a resumed sweep). Never overwrites a run."""
    holds_run = any((run_dir / name).exists() for name in ("metrics.jsonl", "summary.json", resume_points.RESUME_DIR))
    if not os.environ.get(RESUME_ENV):
        if holds_run:
            raise UserError(f"{run_dir} already holds a run; continue it with `python -m tinkerx.resume {run_dir}` or choose another hydra.run.dir")
        (run_dir / FAILED_MARKER).unlink(missing_ok=True)
        return False
    status = run_status(run_dir)
    if status == "finished":
        console.print(f"{run_dir}: finished earlier, skipped")
        return json.loads((run_dir / "summary.json").read_text())
    if resume_points.points(run_dir):
        return True
    # Never started, killed before its first resume point, or failed: start it afresh.
    for name in ("metrics.jsonl", "samples.jsonl", "summary.json", FAILED_MARKER, "failed.json", "checkpoints", "eval"):
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return False


def _show(name: str, summary: dict[str, Any], run_dir: Path) -> None:
    baseline, final = summary.get("baseline"), summary.get("final")
    if isinstance(final, dict):
        show(comparison_table(f"{name}: held-out evaluation", baseline or {}, final))
    show(key_value_table("run", {k: v for k, v in summary.items() if not isinstance(v, dict)}))
    console.print(f"run folder: {run_dir}")

"""A run from composed config to a finished run folder, and the continuation of an unfinished one."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tinkerx.runs.environment import environment

SOURCE_DIR = Path(__file__).resolve().parents[1]
FAILED_MARKER = "failed.txt"


def run(cfg: DictConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Runs (or, with ``resume``, continues) the run in ``run_dir``.

    A run that fails before its first step leaves only ``failed.txt`` saying why; one that fails
    later keeps everything written so far. A stop request (Ctrl-C, SIGTERM) ends with
    ``status: interrupted`` in ``summary.json`` and exit status 130 / 143.
    """
    from tinkerx.build import build
    from tinkerx.runs import resume_points
    from tinkerx.runs.display import console
    from tinkerx.runs.driver import drive
    from tinkerx.runs.interrupts import EXIT_CODES

    started = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        decision = _fresh_or_resume(run_dir)
        if isinstance(decision, dict):
            return decision
        if decision:
            resume, cfg = True, OmegaConf.load(run_dir / "config.yaml")
    point = None
    if resume:
        point = resume_points.latest_point(run_dir, warn=lambda m: console.print(f"[yellow]warning:[/yellow] {m}"))
        _append_jsonl(run_dir / "resumes.jsonl", {"at_step": point.step, "started": started, "environment": environment(SOURCE_DIR)})
    else:
        # Resolved, unlike Hydra's own .hydra/config.yaml: exactly the values this run used.
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        _write_json(run_dir / "environment.json", environment(SOURCE_DIR))

    method = pipeline = None
    closers: list[Any] = []
    try:
        method, pipeline, closers = build(cfg, run_dir)
        summary = drive(method, pipeline, point)
    except BaseException as error:
        steps_done = getattr(method, "step_index", 0) or (point.step if point else 0)
        if isinstance(error, KeyboardInterrupt) and pipeline is not None:
            # A second Ctrl-C abandoned the step: keep what is written, say where it stopped.
            pipeline.recorder.finish({"method": method.name, "run_dir": str(run_dir), "status": "interrupted", "steps": steps_done})
            console.print(f"interrupted at step {steps_done}; run folder: {run_dir}")
            sys.exit(EXIT_CODES[signal.SIGINT])
        if not steps_done and not resume:
            _leave_only_failure(run_dir, error)
        raise
    finally:
        for closer in reversed(closers):
            closer.close()
    previous = _previous_wall_time(run_dir) if resume else 0.0
    summary = {"method": method.name, "run_dir": str(run_dir), **summary, "wall_time_s": previous + time.time() - started}
    pipeline.recorder.finish(summary)
    _show(method.name, summary, run_dir)
    if summary.get("status") == "interrupted":
        console.print(f"resume with: python -m tinkerx.resume {run_dir}")
        sys.exit(EXIT_CODES.get(summary.get("signal"), 130))
    return summary


def _fresh_or_resume(run_dir: Path) -> bool | dict[str, Any]:
    """For a run about to start in ``run_dir``: False to start it, True to resume what is there, or a
    finished run's summary to skip it (the trials of a resumed sweep). Never overwrites a run."""
    import os

    from tinkerx.errors import UserError
    from tinkerx.resume import RESUME_ENV, run_status
    from tinkerx.runs import resume_points
    from tinkerx.runs.display import console

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
    from tinkerx.runs.display import comparison_table, console, key_value_table, show

    baseline, final = summary.get("baseline"), summary.get("final")
    if isinstance(final, dict):
        show(comparison_table(f"{name}: held-out evaluation", baseline or {}, final))
    show(key_value_table("run", {k: v for k, v in summary.items() if not isinstance(v, dict)}))
    console.print(f"run folder: {run_dir}")


def _leave_only_failure(run_dir: Path, error: BaseException) -> None:
    """Nothing was trained: remove the half-made run, leaving one file that says why (and Hydra's
    ``.hydra/`` record of what was asked, which sweep summaries and reproduction read)."""
    reason = " ".join(str(error).split()) or type(error).__name__
    for child in run_dir.iterdir():
        if child.name == ".hydra":
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    (run_dir / FAILED_MARKER).write_text(f"{type(error).__name__}: {reason}\n")


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

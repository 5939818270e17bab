"""Continue a run that was stopped or killed: ``python -m tinkerx.resume RUN_DIR [key=value ...]``.

The run continues in its own folder from its newest intact resume point, with the exact config it
started with (``config.yaml``), and appends to ``metrics.jsonl`` from the step after that point. On
the local backend the result equals an uninterrupted run's, line for line. Only keys that change
where or how often things are written, not what is computed, may be overridden (``RESUMABLE_KEYS``).

Given a sweep folder (``multirun/...``), the same sweep runs again in that folder: finished trials
are skipped, interrupted ones resumed, trials that never started are run, and the sweep summary is
rewritten.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tinkerx import cli
from tinkerx.app import run
from tinkerx.cli_errors import report_user_error
from tinkerx.errors import UserError
from tinkerx.runs.environment import cpu_difference, match_thread_count
from tinkerx.runs.legacy_targets import load_run_config
from tinkerx.runs.status import FAILED_MARKER, RESUME_ENV, run_status

RESUMABLE_KEYS = (
    "training.save_every",
    "training.keep_checkpoints",
    "logger.",
    "backend.base_url",
    "backend.api_key_env",
    "backend.record",
    "backend.proxy",
    "training.max_cost",  # budgets say where a run stops, not what a step computes: a stopped run goes on with a larger one
    "training.max_tokens",
)


def resume_config(run_dir: Path, overrides: list[str]) -> Any:
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise UserError(f"{run_dir} is not a tinkerx run folder (no config.yaml)")
    cfg = load_run_config(config_file)
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise UserError(f"cannot parse override {override!r}: expected key=value")
        if not key.startswith(RESUMABLE_KEYS) and not any(key == k.rstrip(".") for k in RESUMABLE_KEYS):
            raise UserError(
                f"{key} cannot change when resuming (the run would no longer be the run it was); "
                f"keys that may: {', '.join(k + '*' if k.endswith('.') else k for k in RESUMABLE_KEYS)}"
            )
        OmegaConf.update(cfg, key, _value(value), force_add=True)
    return cfg


def _value(text: str) -> Any:
    """An override's value as the command line means it: ``5`` a number, ``true`` a bool, ``null``
    (or nothing) None, anything else the text itself."""
    import yaml

    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return text


def resume_run(run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    cfg = resume_config(run_dir, overrides)  # refuses changed keys before anything else
    status = run_status(run_dir)
    if status == "finished":
        raise UserError(f"{run_dir} is finished (summary.json status: finished); nothing to resume")
    if status == "failed" and (run_dir / FAILED_MARKER).is_file():
        raise UserError(f"{run_dir} failed before its first step ({(run_dir / FAILED_MARKER).read_text().strip()}); start it again instead")
    # A run that failed later (out of memory, say) continues from its last resume point.
    match_thread_count(run_dir)  # the resumed steps sum on CPU as the first ones did
    other_cpu = cpu_difference(run_dir)
    if other_cpu:
        print(f"{other_cpu}: the resumed steps may round float sums differently from the first ones")
    return run(cfg, run_dir, resume=True)


def resume_sweep(sweep_dir: Path, overrides: list[str]) -> None:
    """Runs the sweep recorded in ``multirun.yaml`` again in its own folder, each trial continuing itself."""
    hydra = OmegaConf.load(sweep_dir / "multirun.yaml").hydra
    args = [str(o) for o in hydra.overrides.task] + [
        str(o) for o in hydra.overrides.hydra if not str(o).startswith(("hydra.sweep.dir", "hydra.mode"))
    ]
    os.environ[RESUME_ENV] = "1"
    argv = ["-m", *args, *overrides, f"hydra.sweep.dir={sweep_dir}"]
    print("resuming sweep: python -m tinkerx " + " ".join(argv), file=sys.stderr)
    cli.main(argv)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if argv else 2)
    target = Path(argv[0]).expanduser().resolve()
    try:
        if not target.is_dir():
            raise UserError(f"no run folder at {target}")
        if (target / "multirun.yaml").is_file():
            resume_sweep(target, argv[1:])
        else:
            resume_run(target, argv[1:])
    except UserError as e:
        report_user_error(e)


if __name__ == "__main__":
    main()

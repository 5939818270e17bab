"""The command line as a library: ``main(["method=sft", "model=tiny", ...])`` runs what
``python -m tinkerx method=sft model=tiny ...`` runs.

User mistakes (an unknown group option or key, a bad value, a missing file) end with one line on
stderr and exit status 2; anything else is a bug and keeps its traceback. In a sweep (``-m``) a
failing trial is recorded in its folder instead (``failed.json``) and the other trials still run.
``tinkerx.resume`` (a sweep) and ``tinkerx.reproduce`` call ``main`` with their own argument lists.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from hydra import version
from hydra._internal.utils import _run_hydra, get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from tinkerx.cli_errors import closest_first, install_compact_errors, one_line, report_user_error
from tinkerx.errors import UserError
from tinkerx.paths import CONFIG_DIR, EXPERIMENT_DIR
from tinkerx.runs.data_files import record_data_files
from tinkerx.runs.sweep_summary import record_failure
from tinkerx.settings import check_seed


def unique_suffix() -> str:
    """A short random tag that keeps two runs started in the same second apart."""
    return os.urandom(3).hex()


# ``${unique:}`` in hydra.run.dir / hydra.sweep.dir. Cached like Hydra's ``${now:}``: one value per
# config, which Hydra copies into every trial's config, so a sweep's trials share one folder.
if not OmegaConf.has_resolver("unique"):
    OmegaConf.register_new_resolver("unique", unique_suffix, use_cache=True)


def _entry(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        summary = _run(cfg, run_dir)
    except Exception as e:  # noqa: BLE001 - user mistakes become one line; in a sweep, so does the rest
        message = _user_message(e)
        if hydra_cfg.mode != RunMode.MULTIRUN:
            if message is None:
                raise
            report_user_error(message)
        return _record_failed_trial(run_dir, hydra_cfg.job.num, e, message)
    final = summary.get("final") if isinstance(summary, dict) else None
    # Returned to Hydra so sweepers that optimise (e.g. Optuna) can read the objective.
    return final.get("accuracy") if isinstance(final, dict) else None


# Hydra names the job, and its log file in the run folder (``__main__.log``), after the task
# function's module: run folders keep the names they had when this function lived in __main__.py.
_entry.__module__ = "tinkerx.__main__"


def _run(cfg: DictConfig, run_dir: Path) -> dict:
    from tinkerx.app import run  # deferred: the run machinery (rich, build, the lifecycle) stays off --cfg job and error paths

    check_seed(cfg.get("seed"))
    # Absolute data paths and their hashes, so ``tinkerx.reproduce`` works from anywhere.
    record_data_files(cfg, run_dir)
    return run(cfg, run_dir)


def _user_message(error: Exception) -> str | None:
    if isinstance(error, UserError):
        return one_line(error)
    if isinstance(error, MissingMandatoryValue):
        return f"{error.full_key} is required and has no default: set it, e.g. {error.full_key}=..."
    return None


def _record_failed_trial(run_dir: Path, job_num: int, error: Exception, message: str | None) -> float:
    reason = message or f"{type(error).__name__}: {one_line(error)}"
    details = None if message else "".join(traceback.format_exception(error))
    record_failure(run_dir, reason, details)
    print(f"tinkerx: trial {job_num} failed: {reason}", file=sys.stderr)
    # NaN, not None: Optuna records a NaN objective as a failed trial and carries on.
    return float("nan")


def check_experiment_names(args: list[str]) -> None:
    """``experiment`` is an optional group, so Hydra would silently skip an unknown name."""
    known = sorted(p.stem for p in EXPERIMENT_DIR.glob("*.yaml"))
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key.lstrip("+") != "experiment":
            continue
        for name in value.split(","):  # a sweep over experiments names several
            if name and name != "null" and name not in known:
                raise UserError(f"unknown experiment {name!r}; valid: {', '.join(closest_first(name, known))}")


def main(argv: list[str], composition_prefix: str = "") -> None:
    """Runs the command line ``python -m tinkerx *argv`` in this process (Hydra flags included)."""
    install_compact_errors(composition_prefix)
    try:
        check_experiment_names(argv)
        # What ``@hydra.main`` does, with the argument list given instead of sys.argv's.
        version.setbase("1.3")
        parser = get_args_parser()
        args = parser.parse_args(argv)
        if args.experimental_rerun is not None:
            raise UserError("--experimental-rerun is not supported: re-run a run folder with python -m tinkerx.reproduce RUN_DIR")
        _run_hydra(args=args, args_parser=parser, task_function=_entry, config_path=str(CONFIG_DIR), config_name="config")
    except UserError as e:
        report_user_error(e)
    except ValueError as e:
        # Hydra checks its own flags (--cfg with -m, ...) outside the error reporting patched above.
        if "can be specified" not in str(e):
            raise
        report_user_error(e)

"""One-line errors for user mistakes, including those Hydra finds while composing the config.

Hydra prints composition errors over several lines followed by a hint about HYDRA_FULL_ERROR; for
an unknown option or key the user needs one line naming what was wrong and what is valid.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

EXIT_USER_ERROR = 2
EXIT_FAILED_TRIALS = 1
_PACKAGE_DIR = Path(__file__).resolve().parent
# Sweeper and launcher plugins that conf/hydra/ builds on, and the extra that installs each.
PLUGIN_EXTRAS = {"optuna": "optuna", "joblib": "parallel", "submitit_slurm": "slurm", "submitit_local": "slurm"}


def one_line(error: BaseException | str) -> str:
    return " ".join(str(error).split())


def report_user_error(error: BaseException | str, exit_code: int = EXIT_USER_ERROR) -> NoReturn:
    print(f"tinkerx: error: {one_line(error)}", file=sys.stderr)
    sys.exit(exit_code)


def warn(message: str) -> None:
    print(f"tinkerx: warning: {one_line(message)}", file=sys.stderr)


def closest_first(name: str, candidates: list[str]) -> list[str]:
    """``candidates`` with the ones most like ``name`` first (difflib), then the rest in order."""
    import difflib

    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    return close + [c for c in sorted(candidates) if c not in close]


def describe_composition_error(error: BaseException) -> str | None:
    """A one-line description of a Hydra composition error, or None if it is not one."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    if isinstance(error, MissingConfigException):
        options = sorted(error.options or [])
        missing = error.missing_cfg_file or ""
        group, _, option = missing.rpartition("/")
        if option in PLUGIN_EXTRAS and group.startswith("hydra/"):
            return f"{group}={option} needs a Hydra plugin that is not installed: pip install 'tinkerx[{PLUGIN_EXTRAS[option]}]'"
        if group:
            return f"unknown {group} option {option!r}; valid: {', '.join(closest_first(option, options))}"
        return f"config {missing!r} not found"
    if isinstance(error, ValueError) and "Config group override must be a string or a list" in str(error):
        # Hydra names neither the group nor the value here; `GROUP=null` is the one way to reach it.
        return ("a config group was set to null (e.g. logger=null): name one of its options instead "
                "(logger=none turns logging off) or drop the group with ~GROUP")
    if isinstance(error, OverrideParseException):
        return f"cannot parse override: {error}"
    if isinstance(error, ConfigCompositionException):
        cause = error.__cause__
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
            return _unknown_key(cause)
        return one_line(error)
    return None


def _unknown_key(cause: Any) -> str:
    from omegaconf import DictConfig

    key = str(getattr(cause, "full_key", None) or getattr(cause, "key", ""))
    parent, _, name = key.rpartition(".")
    node = getattr(cause, "parent_node", None)
    message = f"unknown config key {key!r}"
    if isinstance(node, DictConfig):
        valid = closest_first(name, [str(k) for k in node.keys() if not str(k).startswith("_")])
        where = f" under {parent}" if parent else ""
        message += f"; valid keys{where}: {', '.join(valid)}"
    return f"{message} (add a new key with +{key}=...)"


def describe_output_error(error: BaseException) -> str | None:
    """Hydra creates the run folder before tinkerx runs: a folder it cannot create is the user's to fix."""
    if not isinstance(error, OSError) or error.filename is None:
        return None
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(Path(tb.tb_frame.f_code.co_filename).resolve())
        tb = tb.tb_next
    # Only when no tinkerx code below this wrapper raised it: then it is Hydra's folder set-up.
    if any(_PACKAGE_DIR in f.parents and f.name != "cli_errors.py" for f in frames):
        return None
    reason = error.strerror or type(error).__name__
    return (f"cannot create the output folder {error.filename}: {reason}; "
            "choose a writable place with hydra.run.dir=PATH (hydra.sweep.dir=PATH with -m)")


def install_compact_errors(composition_prefix: str = "") -> None:
    """Route Hydra's error reporting through one-line descriptions.

    ``composition_prefix`` is put before composition errors, e.g. to say that a reproduced run's
    config no longer composes.
    """
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    import hydra._internal.utils as hydra_utils

    original: Callable[[Callable[[], Any]], Any] = getattr(hydra_utils, "_tinkerx_original_run_and_report", hydra_utils.run_and_report)

    def run_and_report(func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as error:  # noqa: BLE001 - classified below, re-reported otherwise
            from tinkerx.errors import UserError

            if isinstance(error, UserError):
                report_user_error(error)
            message = describe_composition_error(error)
            if message is not None:
                report_user_error(composition_prefix + message)
            message = describe_output_error(error)
            if message is not None:
                report_user_error(message)
            return original(lambda: _reraise(error))

    hydra_utils._tinkerx_original_run_and_report = original
    hydra_utils.run_and_report = run_and_report


def _reraise(error: BaseException) -> NoReturn:
    raise error

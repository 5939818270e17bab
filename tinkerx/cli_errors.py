"""One-line errors for user mistakes, including those Hydra finds while composing the config.

Hydra prints composition errors over several lines followed by a hint about HYDRA_FULL_ERROR; for
an unknown option or key the user needs one line naming what was wrong and what is valid.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, NoReturn

EXIT_USER_ERROR = 2


def report_user_error(error: BaseException) -> NoReturn:
    message = " ".join(str(error).split())
    print(f"tinkerx: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def describe_composition_error(error: BaseException) -> str | None:
    """A one-line description of a Hydra composition error, or None if it is not one."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigKeyError

    if isinstance(error, MissingConfigException):
        options = sorted(error.options or [])
        missing = error.missing_cfg_file or ""
        group, _, option = missing.rpartition("/")
        if group:
            return f"unknown {group} option {option!r}; valid: {', '.join(options)}"
        return f"config {missing!r} not found"
    if isinstance(error, OverrideParseException):
        return f"cannot parse override: {error}"
    if isinstance(error, ConfigCompositionException):
        cause = error.__cause__
        if isinstance(cause, ConfigKeyError):
            key = getattr(cause, "full_key", None) or getattr(cause, "key", "")
            parent = key.rpartition(".")[0]
            valid = _keys_near(cause)
            hint = f"; valid keys{' under ' + parent if parent else ''}: {valid}" if valid else ""
            return f"unknown config key {key!r}{hint} (add a new key with +{key}=...)"
        return " ".join(str(error).split())
    return None


def _keys_near(cause: Any) -> str:
    node = getattr(cause, "object_type", None)
    parent = getattr(cause, "parent_node", None) or getattr(cause, "node", None)
    try:
        from omegaconf import DictConfig

        if isinstance(parent, DictConfig):
            return ", ".join(sorted(str(k) for k in parent.keys()))
    except Exception:
        return ""
    return "" if node is None else ""


def install_compact_errors() -> None:
    """Route Hydra's error reporting through ``describe_composition_error``."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    import hydra._internal.utils as hydra_utils

    original: Callable[[Callable[[], Any]], Any] = hydra_utils.run_and_report

    def run_and_report(func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as error:  # noqa: BLE001 - classified below, re-reported otherwise
            from tinkerx.errors import UserError

            if isinstance(error, UserError):
                report_user_error(error)
            message = describe_composition_error(error)
            if message is None:
                return original(lambda: _reraise(error))
            report_user_error(Exception(message))

    hydra_utils.run_and_report = run_and_report


def _reraise(error: BaseException) -> NoReturn:
    raise error

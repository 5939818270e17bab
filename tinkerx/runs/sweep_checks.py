"""Before a run or sweep starts: settings the chosen method never reads.

Each method lists what it ignores beside its own config (``method_ignores`` in conf/method/*.yaml),
e.g. SFT evaluates greedily with the evaluator's settings, so sweeping ``sampling.temperature``
under SFT only repeats the same run.
"""

from __future__ import annotations

from typing import Iterable

from tinkerx.cli_errors import warn


def override_keys(overrides: Iterable[str]) -> list[str]:
    return [str(o).split("=", 1)[0].lstrip("+~") for o in overrides if "=" in str(o)]


def ignored_overrides(keys: Iterable[str], ignored: Iterable[str]) -> list[str]:
    ignored = list(ignored)
    return [k for k in keys if any(k == i or k.startswith(f"{i}.") for i in ignored)]


def warn_ignored_keys(method: str, keys: Iterable[str], ignored: Iterable[str]) -> list[str]:
    found = ignored_overrides(keys, ignored)
    if found:
        warn(f"method={method} ignores {', '.join(found)}: runs that differ only there are the same run "
             f"(see method_ignores in conf/method/{method}.yaml)")
    return found

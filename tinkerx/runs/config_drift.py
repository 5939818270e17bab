"""The values a run ran with that its experiment's files no longer give.

``tinkerx.reproduce`` re-composes a run from its group choices and overrides, so a later edit of an
experiment's YAML (a demo made longer, a learning rate retuned) would silently change what reproducing
an earlier run folder runs. The run's resolved ``config.yaml`` holds exactly what ran: every value that
composes differently today is set back to it with an override, and reproduce says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tinkerx.runs.compose import compose_config
from tinkerx.runs.legacy_experiments import override_key, override_value

# Not what ran: a band judges a run after it finished, and today's bands judge the reproduction.
_NOT_RUN = ("bands",)
_MISSING = object()


def drifted_overrides(args: list[str], run_dir: Path, changes: list[str]) -> tuple[list[str], list[str]]:
    """``(overrides, unrestorable keys)``: ``key=value`` for each value of ``run_dir/config.yaml`` that
    ``args`` compose differently today, and the keys whose old value cannot be set back (removed since,
    or not a single value). Keys ``args`` set are left as set, and so is everything under a key that
    ``changes`` (the reproduction's own overrides: ``seed=1``, ``backend=tinker``) sets."""
    given = {override_key(o) for o in args}
    changed = tuple(override_key(o) for o in changes)
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return [], []
    try:
        composed = compose_config([a for a in args if not a.startswith("hydra.")])
        now = _leaves(OmegaConf.to_container(composed, resolve=True))
    except Exception:  # noqa: BLE001 - a config that does not compose is reported by the run itself, in one line
        return [], []
    then = _leaves(OmegaConf.to_container(OmegaConf.load(saved), resolve=False))
    overrides, lost = [], []
    for key, value in then.items():
        if key in given or key.startswith(tuple(c + "." for c in changed)) or key.split(".", 1)[0] in _NOT_RUN or now.get(key, _MISSING) == value:
            continue
        if key in now and _single(value) and _single(now[key]):
            overrides.append(f"{key}={override_value(value)}")
        else:
            lost.append(key)
    return overrides, lost


def _single(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to values; a list is one value (its items are not addressed one by one)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            leaves.update(_leaves(value, name))
        else:
            leaves[name] = value
    return leaves

"""Every ``python -m tinkerx ...`` command in the README and docs composes as written, to what it says.

A typo'd key, a renamed group option or a removed experiment in a documented command fails here,
not in a user's terminal; so does a command whose value some other config would silently replace.
For each command the composed config must hold every value the command sets (``key=value``), the
option it picks for every group (``group=option``, read from Hydra's choices), nothing for a key it
deletes (``~key``), and, for ``experiment=NAME``, every value that experiment sets and the command
does not. Composition only: the commands that train are run by their own tests and by the scripts in
``.ci/``; sweeps are checked with the first value of each swept key, and Hydra's own settings (output
folders, optional sweeper/launcher plugins) are left out.
"""

from __future__ import annotations

import re
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf

from tests.helpers.paths import CONF_DIR, ROOT
from tinkerx.paths import EXPERIMENT_DIR

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            # `python -m tinkerx` itself, not its other entry points (tinkerx.serve, tinkerx.mcp, ...).
            for match in re.finditer(r"python -m tinkerx(?![.\w])((?: [^`#&|;]*)?)", line):
                args = match.group(1).strip()
                if "$" in args or "..." in args:
                    continue  # a placeholder the reader fills in
                found.append((f"{doc.name}: python -m tinkerx {args}".strip(), args))
    return found


def overrides(args: str) -> list[str]:
    kept = []
    for word in shlex.split(args):
        if word in ("-m", "--multirun", "job") or word.startswith(("--", "hydra.", "hydra/")):
            continue
        key, sep, value = word.partition("=")
        if sep and "," in value and not value.startswith(("[", "{")):
            value = value.split(",")[0]  # a swept key: its first value
        kept.append(f"{key}={value}" if sep else word)
    return kept


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def _leaves(node, prefix: str = "") -> dict[str, object]:
    if not isinstance(node, dict):
        return {prefix: node}
    found = {}
    for key, value in node.items():
        found.update(_leaves(value, f"{prefix}.{key}" if prefix else key))
    return found


def expected_values(given: list[str]) -> tuple[dict[str, object], dict[str, str], list[str]]:
    """What a command sets: ``(values by key, options by group, deleted keys)``."""
    values: dict[str, object] = {}
    groups: dict[str, str] = {}
    deleted: list[str] = []
    for override in OverridesParser.create().parse_overrides(given):
        key = override.key_or_group
        if override.is_delete():
            deleted.append(key)
        elif (CONF_DIR / key).is_dir():
            groups[f"{key}@{override.package}" if override.package else key] = override.value()
        else:
            values[key] = override.value()
    experiment = groups.get("experiment")
    if experiment:
        own = OmegaConf.to_container(OmegaConf.load(EXPERIMENT_DIR / f"{experiment}.yaml"))
        own.pop("defaults", None)
        for key, value in _leaves(own).items():
            values.setdefault(key, value)  # the command line wins over its experiment
    return values, groups, deleted


COMMANDS = documented_commands()
DEFAULT_CHOICES = {k: v for entry in OmegaConf.load(CONF_DIR / "config.yaml").defaults if isinstance(entry, DictConfig)
                   for k, v in entry.items() if not k.startswith("optional ")}


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 20
    assert all(args for _, args in COMMANDS if args) and any(a.startswith("experiment=") for _, a in COMMANDS)


@pytest.mark.parametrize("where,args", COMMANDS, ids=[c[0][:90] for c in COMMANDS])
def test_documented_command_composes_to_what_it_sets(compose_config, where, args):
    given = overrides(args)
    cfg = compose_config(given, return_hydra_config=True)
    choices = cfg.hydra.runtime.choices
    values, groups, deleted = expected_values(given)
    for group, option in groups.items():
        assert choices.get(group) == option, f"{where}: {group} is {choices.get(group)!r}, not {option!r}"
    for key, value in values.items():
        composed = _plain(OmegaConf.select(cfg, key, throw_on_missing=False))
        assert composed == value, f"{where}: {key} composes to {composed!r}, not {value!r}"
    for key in deleted:
        assert OmegaConf.select(cfg, key) is None, f"{where}: {key} is still set"
    if not given:  # a bare command: the defaults conf/config.yaml lists
        assert {k: choices.get(k) for k in DEFAULT_CHOICES} == DEFAULT_CHOICES, where

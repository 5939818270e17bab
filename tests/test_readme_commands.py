"""Every ``python -m tinkerx ...`` command in the README and docs composes as written.

A typo'd key, a renamed group option or a removed experiment in a documented command fails here,
not in a user's terminal. Composition only: the commands that train are run by their own tests and
by the scripts in ``.ci/``; sweeps are checked with the first value of each swept key, and Hydra's
own settings (output folders, optional sweeper/launcher plugins) are left out.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import ROOT, compose

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            for match in re.finditer(r"python -m tinkerx((?: [^`#&|;]*)?)", line):
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


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("where,args", COMMANDS, ids=[c[0][:90] for c in COMMANDS])
def test_documented_command_composes(where, args):
    cfg = compose(overrides(args))
    assert cfg.method is not None, where

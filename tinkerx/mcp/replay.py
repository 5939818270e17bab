"""Replaying an agent's session without the agent: ``python -m tinkerx.reproduce SESSION_DIR``.

The recorded tool calls (``tool_calls.jsonl``) that changed the session are made again, in order,
on a fresh ``TrainingSession`` with the server's own overrides; calls that only looked (status,
wait, ...) or failed are skipped, and a training call takes the steps it actually took (a
cancelled one took fewer than asked). Paths inside the original session folder point into the new
one. Afterwards each run's ``metrics.jsonl`` is compared with the original's, timing aside; on the
local CPU backend they match line for line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tinkerx.cli_errors import report_user_error
from tinkerx.errors import UserError
from tinkerx.mcp.records import read_session, read_tool_calls
from tinkerx.mcp.session import TrainingSession
from tinkerx.runs.compare import compare_metrics

REPLAYED = ("start_run", "init_sft", "init_grpo", "train_step", "train_sft_step", "train_grpo_step", "sample", "evaluate", "save", "load", "finish")
STEPPED = {"train_step": "steps", "train_sft_step": "steps", "train_grpo_step": "iterations"}


def replay(session_dir: Path, new_dir: Path, log: Any = None) -> TrainingSession:
    session = TrainingSession(new_dir, read_session(session_dir)["overrides"])
    try:
        for call in read_tool_calls(session_dir):
            if call["tool"] not in REPLAYED or not call["ok"]:
                continue
            arguments = {k: _relocated(v, session_dir, session.dir) for k, v in call["arguments"].items()}
            if call["tool"] in STEPPED:
                arguments = {STEPPED[call["tool"]]: call["result"]["steps_run"]}
                if not arguments[STEPPED[call["tool"]]]:
                    continue
            if log is not None:
                print(f"replaying call {call['call']}: {call['tool']}({arguments})", file=log)
            started = time.time()
            result = getattr(session, call["tool"])(**arguments)
            session.records.tool_call(call["tool"], arguments, started, result)
    finally:
        session.close("replayed")
    return session


def compare_runs(original: Path, replayed: Path) -> dict[str, str | None]:
    """Each run folder of the original session: None when its metrics.jsonl matches, else the first difference."""
    runs = sorted(p.name for p in original.iterdir() if (p / "metrics.jsonl").is_file())
    return {run: compare_metrics(original / run, replayed / run) if (replayed / run / "metrics.jsonl").is_file() else "not replayed" for run in runs}


def main(session_dir: Path, new_dir: Path) -> None:
    print(f"replaying the agent session {session_dir} into {new_dir}", file=sys.stderr)
    try:
        replay(session_dir, new_dir, log=sys.stderr)
    except UserError as e:  # e.g. a data file the session used is gone: one line, exit 2
        report_user_error(e)
    differences = compare_runs(session_dir, new_dir)
    for run, difference in differences.items():
        verdict = "metrics.jsonl matches the original line for line" if difference is None else f"metrics differ from the original: {difference}"
        print(f"{new_dir / run}: {verdict}", file=sys.stderr)
    if any(d is not None for d in differences.values()):
        sys.exit(1)


def _relocated(value: Any, old: Path, new: Path) -> Any:
    if isinstance(value, list):  # start_run's overrides: "key=<a path in the session folder>"
        return [v.replace(str(old), str(new)) if isinstance(v, str) else v for v in value]
    if isinstance(value, str) and value.startswith(str(old)):
        return str(new) + value[len(str(old)) :]
    return value

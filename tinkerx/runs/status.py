"""How a run folder says where its run stands, read by the CLI, ``tinkerx.resume`` and sweep resumption."""

from __future__ import annotations

import json
from pathlib import Path

FAILED_MARKER = "failed.txt"  # a run that failed before its first step leaves only this (and .hydra/)
BUDGET_REACHED = "budget_reached"  # summary.json status of a run its training.max_cost / max_tokens stopped; resumable
RESUME_ENV = "TINKERX_RESUME"  # set for the trials of a resumed sweep: each continues its own folder


def run_status(run_dir: Path) -> str | None:
    """``finished`` / ``interrupted`` / ``budget_reached`` / ``failed`` from summary.json, ``failed`` from failed.txt, None if it just stopped."""
    if (run_dir / FAILED_MARKER).is_file():
        return "failed"
    try:
        return json.loads((run_dir / "summary.json").read_text()).get("status", "finished")
    except (OSError, ValueError):
        return None


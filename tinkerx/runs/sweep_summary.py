"""One row per trial of a sweep folder: overrides, status, baseline and final metrics, wall time.

Each trial's folder says how it ended: ``summary.json`` when it finished, ``failed.json`` (with its
one-line reason) when it failed (``summary.json`` with ``status: failed`` when that was after its
first step); neither means it never finished (killed).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

FAILED_FILE = "failed.json"
SUMMARY_FILE = "summary.json"
SWEEP_CSV = "sweep_summary.csv"
SWEEP_MD = "sweep_summary.md"
FIXED_COLUMNS = ("trial", "overrides", "status", "reason")
USAGE_COLUMNS = ("tokens", "cost_usd")  # where trials recorded their spend (summary.json usage)
TRAILING_COLUMNS = ("wall_time_s", "run_dir")


def record_failure(run_dir: Path, reason: str, details: str | None = None) -> None:
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / FAILED_FILE).write_text(json.dumps({"reason": reason, "traceback": details}, indent=2) + "\n")
    except OSError:
        pass  # the folder itself is what failed; the trial's line on stderr still says why


def trial_dirs(sweep_dir: Path) -> list[Path]:
    """The trial folders Hydra made (each has ``.hydra/overrides.yaml``), in trial order."""
    found = [p for p in Path(sweep_dir).iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    return sorted(found, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def trial_overrides(trial_dir: Path) -> list[str]:
    return [str(o) for o in OmegaConf.load(trial_dir / ".hydra" / "overrides.yaml")]


def trial_row(trial_dir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"trial": trial_dir.name, "overrides": " ".join(trial_overrides(trial_dir)), "reason": ""}
    summary_file, failed_file = trial_dir / SUMMARY_FILE, trial_dir / FAILED_FILE
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        # An interrupted trial (Ctrl-C, SIGTERM) has a summary too, and so has one that failed after
        # its first step (out of memory, say); tinkerx.resume continues both.
        status = summary.get("status")
        row["status"] = status if status in ("interrupted", "failed", "budget_reached") else "completed"
        row["reason"] = summary.get("error", "") if status == "failed" else ""
        for part in ("baseline", "final"):
            for key, value in (summary.get(part) or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    row[f"{part}/{key}"] = value
        row.update(usage_cells(summary.get("usage")))
        row["wall_time_s"] = summary.get("wall_time_s")
    elif failed_file.is_file():
        row["status"] = "failed"
        row["reason"] = json.loads(failed_file.read_text()).get("reason", "")
    else:
        row["status"] = "unfinished"
    row["run_dir"] = str(trial_dir.resolve())
    return row


def usage_cells(usage: Any) -> dict[str, Any]:
    """A trial's spend: its tokens, and its cost where the prices give one ("unknown" otherwise, never 0)."""
    if not isinstance(usage, dict):
        return {}
    cost = usage.get("cost_usd")
    return {"tokens": usage.get("total_tokens"), "cost_usd": cost if cost is not None else "unknown"}


def sweep_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    return [trial_row(d) for d in trial_dirs(sweep_dir)]


def columns(rows: list[dict[str, Any]]) -> list[str]:
    present = {k for row in rows for k in row}
    metrics = sorted(present - set(FIXED_COLUMNS) - set(USAGE_COLUMNS) - set(TRAILING_COLUMNS),
                     key=lambda k: (not k.startswith("baseline/"), k))
    return [*FIXED_COLUMNS, *metrics, *(c for c in USAGE_COLUMNS if c in present), *TRAILING_COLUMNS]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_summary(sweep_dir: Path, rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    names = columns(rows)
    csv_path, md_path = Path(sweep_dir) / SWEEP_CSV, Path(sweep_dir) / SWEEP_MD
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows({k: row.get(k, "") for k in names} for row in rows)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k)).replace("|", "\\|") for k in names) + " |")
    md_path.write_text(f"# Sweep {Path(sweep_dir).name}\n\n" + "\n".join(lines) + "\n")
    return csv_path, md_path


def varying_overrides(rows: list[dict[str, Any]], short: bool = False) -> list[str]:
    """Each row's overrides, keeping only the keys whose values differ between trials.

    ``short`` rounds numbers to 4 significant digits (Optuna proposes values like 0.0035384535909).
    """
    parsed = [dict(o.split("=", 1) for o in row["overrides"].split() if "=" in o) for row in rows]
    keys = {k for overrides in parsed for k in overrides}
    varying = [k for k in keys if len({overrides.get(k) for overrides in parsed}) > 1]
    show = _short_number if short else str
    return [" ".join(f"{k}={show(overrides[k])}" for k in overrides if k in varying) for overrides in parsed]


def _short_number(value: str) -> str:
    try:
        return f"{float(value):.4g}" if "." in value or "e" in value.lower() else value
    except ValueError:
        return value


def summary_table(rows: list[dict[str, Any]], title: str):
    """The terminal view, narrow enough to read: what differs between trials, the final metrics."""
    from rich.table import Table  # deferred: rich loads only for this view, not on every CLI start-up

    # The headline figures only (accuracy first); the files keep every metric.
    metrics = sorted((c for c in columns(rows) if c.startswith("final/")), key=lambda c: c != "final/accuracy")[:2]
    table = Table(title=title)
    table.add_column("trial", no_wrap=True)
    table.add_column("overrides", overflow="fold")
    table.add_column("status", overflow="fold")
    spent = any(row.get("tokens") is not None for row in rows)
    for name in (*(m.removeprefix("final/") for m in metrics), *(("tokens", "cost $") if spent else ()), "wall s"):
        table.add_column(name, justify="right", overflow="fold")
    for row, overrides in zip(rows, varying_overrides(rows, short=True)):
        status = row["status"] + (f": {row['reason']}" if row["reason"] else "")
        usage = (_cell(row.get("tokens")), _cell(row.get("cost_usd"))) if spent else ()
        table.add_row(row["trial"], overrides, status, *(_cell(row.get(m)) for m in metrics), *usage, _cell(row.get("wall_time_s")))
    return table

"""Everything a run writes into its folder, line by line as it happens, so nothing is lost to a crash.

``metrics.jsonl`` holds one JSON object per step. Keys under ``time/`` are wall-clock figures; all
other keys are deterministic for a seeded local run, which is what ``tinkerx.reproduce`` compares.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

TIME_PREFIX = "time/"
APPENDED = ("metrics.jsonl", "samples.jsonl")  # files written a line per step


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


class RunRecorder:
    def __init__(self, run_dir: Path, loggers: Sequence[Any] = ()) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.loggers = list(loggers)
        self._metrics = (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8")
        self.history: list[dict[str, Any]] = []
        # Facts about the run known before it starts (e.g. over-long examples dropped), added to summary.json.
        self.summary_additions: dict[str, Any] = {}

    def log_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        self.history.append(row)
        for logger in self.loggers:
            logger.log(step, row)

    def truncate_after(self, step: int) -> None:
        """Drop the lines of steps after ``step`` (and a line cut short by a kill) from the files a run
        appends to, so a resumed run continues them without duplicates or gaps."""
        self._metrics.close()
        for name in APPENDED:
            path = self.run_dir / name
            if not path.is_file():
                continue
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if row.get("step", 0) <= step:
                    kept.append(line)
            path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        self._metrics = (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8")

    def write_json(self, relative: str, obj: Any) -> Path:
        path = self.run_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        return path

    def write_jsonl(self, relative: str, rows: Iterable[dict[str, Any]], append: bool = False) -> Path:
        path = self.run_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if append else "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, default=_jsonable) + "\n")
        return path

    def finish(self, summary: dict[str, Any]) -> None:
        summary = {**summary, **self.summary_additions}
        self.write_json("summary.json", summary)
        for logger in self.loggers:
            logger.finish(summary)
        self._metrics.close()

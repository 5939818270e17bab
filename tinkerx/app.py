"""A run from composed config to a finished run folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tinkerx.runs.environment import environment

SOURCE_DIR = Path(__file__).resolve().parents[1]


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    from tinkerx.build import build
    from tinkerx.runs.display import comparison_table, console, key_value_table, show

    started = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    # Resolved, unlike Hydra's own .hydra/config.yaml: exactly the values this run used.
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    _write_json(run_dir / "environment.json", environment(SOURCE_DIR))

    method, pipeline, closers = build(cfg, run_dir)
    try:
        summary = method.run(pipeline)
    finally:
        for closer in reversed(closers):
            closer.close()
    summary = {"method": method.name, "run_dir": str(run_dir), **summary, "wall_time_s": time.time() - started}
    pipeline.recorder.finish(summary)

    baseline, final = summary.get("baseline"), summary.get("final")
    if isinstance(final, dict):
        show(comparison_table(f"{method.name}: held-out evaluation", baseline or {}, final))
    show(key_value_table("run", {k: v for k, v in summary.items() if not isinstance(v, dict)}))
    console.print(f"run folder: {run_dir}")
    return summary


def _write_json(path: Path, obj: Any) -> None:
    import json

    path.write_text(json.dumps(obj, indent=2) + "\n")

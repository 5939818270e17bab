"""Class paths that moved, so that a run folder written before the move still resumes and reproduces.

A run's ``config.yaml`` is resolved and names its objects by ``_target_``. When a method moved to
``tinkerx/methods/<name>/`` most of its paths stayed valid (each package exports its method); the
ones below did not. ``upgrade_targets`` rewrites them in a loaded config before it is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

# Old ``_target_`` -> the path of the same object now.
MOVED_TARGETS: dict[str, str] = {
    "tinkerx.methods.evaluate.Evaluate": "tinkerx.methods.eval.Evaluate",
    "tinkerx.methods.distillation.Teacher": "tinkerx.methods.distill.Teacher",
    "tinkerx.methods.distillation.teacher.Teacher": "tinkerx.methods.distill.Teacher",
}


def upgrade_targets(cfg: DictConfig | ListConfig) -> list[str]:
    """Rewrites moved ``_target_`` paths anywhere in ``cfg``, in place; the keys it rewrote."""
    upgraded: list[str] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, DictConfig):
            for key in list(node.keys()):
                if OmegaConf.is_missing(node, key):  # a ``???`` value names no object
                    continue
                path = f"{where}.{key}" if where else str(key)
                if key == "_target_" and node[key] in MOVED_TARGETS:
                    node[key] = MOVED_TARGETS[node[key]]
                    upgraded.append(path)
                elif key != "_target_":
                    visit(node[key], path)
        elif isinstance(node, ListConfig):
            for i, item in enumerate(node):
                visit(item, f"{where}[{i}]")

    visit(cfg, "")
    return upgraded


def load_run_config(config_file: Path) -> DictConfig:
    """A run folder's saved ``config.yaml``, with class paths that moved since it was written upgraded:
    how every front door that continues a run reads it."""
    cfg = OmegaConf.load(config_file)
    upgrade_targets(cfg)
    return cfg

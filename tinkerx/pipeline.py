"""The objects a method runs with, built from config by ``tinkerx.build`` and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tinkerx.runs.recorder import RunRecorder
from tinkerx.settings import OptimSettings, SamplingSettings, TrainingSettings


@dataclass
class Pipeline:
    run_dir: Path
    seed: int
    service: Any  # a tinker.ServiceClient or the local backend's LocalServiceClient: same shape
    base_model: str
    lora_rank: int
    tokenizer: Any
    dataset: Any
    recorder: RunRecorder
    optim: OptimSettings
    sampling: SamplingSettings
    training: TrainingSettings
    reward: Any = None
    evaluator: Any = None
    components: dict[str, Any] = field(default_factory=dict)  # method-specific parts, e.g. a judge


class Method(Protocol):
    """A training or evaluation recipe: configured at build time, run once on a pipeline."""

    name: str

    def run(self, pipeline: Pipeline) -> dict[str, Any]:
        """Do the work and return the run's summary (``baseline`` / ``final`` metrics and more)."""
        ...

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
    """A training or evaluation recipe driven one step at a time.

    The CLI's loop (``tinkerx.driver``), ``tinkerx.resume`` and the MCP server are all drivers
    of this one shape, so none of them holds a copy of a training loop. Everything a method needs to
    continue exactly where it stopped that is not in the backend's checkpoint (data position, pools,
    counters, the summary so far) comes out of ``state()`` as plain JSON values.

    Evaluation (``method=eval``) is one too, with ``total_steps = 0``: its ``finish`` evaluates. What
    methods do alike (opening, sampling, evaluating and saving the policy) is in ``tinkerx.methods.shared``.
    """

    name: str
    shown: tuple[str, ...]  # the metrics the progress bar shows
    total_steps: int  # known after ``setup``
    step_index: int  # steps completed so far

    def setup(self, pipeline: Pipeline, resume: "ResumeState | None" = None) -> None:
        """Create clients and read data; with ``resume``, continue from its checkpoints and state."""
        ...

    def start(self) -> dict[str, Any] | None:
        """Work before the first step of a fresh run (the baseline evaluation); metrics for step 0 or None."""
        ...

    def step(self) -> dict[str, Any]:
        """One training step; returns its metrics (the driver records them under ``step_index``)."""
        ...

    def evaluate(self, name: str) -> dict[str, Any]:
        """Held-out evaluation of the current weights, recorded under ``eval/<name>.jsonl``."""
        ...

    def save(self, name: str) -> dict[str, str]:
        """Save every trained policy's full state (weights and optimizer) under ``name``: policy -> path."""
        ...

    def state(self) -> dict[str, Any]:
        ...

    def sampling_client(self) -> Any:
        """A sampling client for the policy's current weights (what front doors sample from)."""
        ...

    def load(self, path: str, with_optimizer: bool = False) -> None:
        """Load a saved state (``save``'s path) into the trained policy."""
        ...

    def saved_checkpoints(self) -> list[dict[str, Any]]:
        """Checkpoints the method saved on its own so far (e.g. GRPO's best-so-far): name, path, step."""
        ...

    def finish(self) -> dict[str, Any]:
        """Final evaluation and checkpoint; returns the run's summary (``baseline`` / ``final`` and more)."""
        ...

    def summary(self) -> dict[str, Any]:
        """The summary so far, for a run that stops early (interrupted)."""
        ...


@dataclass
class ResumeState:
    """What a method continues from: its own ``state()`` and the checkpoint paths ``save()`` returned."""

    step: int
    method_state: dict[str, Any]
    checkpoints: dict[str, str]

"""The hyperparameters every method shares, under short stable keys (``optim``, ``sampling``, ``training``).

They are validated when built, which ``build.py`` does before any model, data or backend work, so a
bad value costs the user nothing.
"""

from __future__ import annotations

import math
import numbers
import typing
from dataclasses import dataclass, fields
from typing import Any

from tinkerx.errors import ConfigError

SCHEDULES = ("constant", "linear", "cosine")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_seed(seed: Any) -> None:
    _require(isinstance(seed, int) and not isinstance(seed, bool), f"seed must be an integer, got {seed!r}")


def _check_types(settings: Any, prefix: str) -> None:
    """Numbers of the declared kind, checked before the range checks compare them.

    A dataclass does not check its annotations, and ``training.max_steps=2.5`` would otherwise
    fail deep inside a loop with a TypeError.
    """
    hints = typing.get_type_hints(type(settings))
    for field in fields(settings):
        value, kinds = getattr(settings, field.name), typing.get_args(hints[field.name]) or (hints[field.name],)
        if value is None and type(None) in kinds:
            continue
        if int in kinds and float not in kinds:
            ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif float in kinds:
            ok, expected = isinstance(value, numbers.Real) and not isinstance(value, bool), "a number"
        else:
            continue
        _require(ok, f"{prefix}.{field.name} must be {expected}{' or null' if type(None) in kinds else ''}, got {value!r}")


@dataclass
class OptimSettings:
    """AdamW hyperparameters and the learning-rate schedule.

    ``horizon`` is the number of steps the schedule decays over; ``None`` means the run's step count.
    ``warmup_steps`` ramps linearly from 0, and only at the start of a fresh run.
    """

    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip_norm: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    horizon: int | None = None
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        _check_types(self, "optim")
        _require(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        _require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, f"optim.beta1/beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")
        _require(self.eps > 0, f"optim.eps must be > 0, got {self.eps}")
        _require(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        _require(self.grad_clip_norm >= 0, f"optim.grad_clip_norm must be >= 0 (0 disables), got {self.grad_clip_norm}")
        _require(self.schedule in SCHEDULES, f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        _require(self.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        _require(self.horizon is None or self.horizon > 0, f"optim.horizon must be > 0 or null, got {self.horizon}")
        _require(0 <= self.min_lr_ratio <= 1, f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")

    def lr_at(self, step: int, total_steps: int, fresh_run: bool = True) -> float:
        """Learning rate for 0-based ``step``."""
        if fresh_run and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        horizon = self.horizon or total_steps
        if self.schedule == "constant" or horizon <= self.warmup_steps:
            return self.lr
        progress = min(1.0, (step - self.warmup_steps) / max(1, horizon - self.warmup_steps))
        if self.schedule == "linear":
            factor = 1.0 - progress
        else:
            factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * factor)

    def adam_params(self, step: int, total_steps: int, fresh_run: bool = True):
        from tinker import types

        return types.AdamParams(
            learning_rate=self.lr_at(step, total_steps, fresh_run),
            beta1=self.beta1,
            beta2=self.beta2,
            eps=self.eps,
            weight_decay=self.weight_decay,
            grad_clip_norm=self.grad_clip_norm,
        )


@dataclass
class SamplingSettings:
    temperature: float = 1.0
    max_tokens: int = 64
    top_p: float = 1.0
    top_k: int = -1
    stop: list[Any] | None = None

    def __post_init__(self) -> None:
        _check_types(self, "sampling")
        _require(self.temperature >= 0, f"sampling.temperature must be >= 0, got {self.temperature}")
        _require(self.max_tokens >= 1, f"sampling.max_tokens must be >= 1, got {self.max_tokens}")
        _require(0 < self.top_p <= 1, f"sampling.top_p must be in (0, 1], got {self.top_p}")
        _require(self.top_k == -1 or self.top_k >= 1, f"sampling.top_k must be -1 (off) or >= 1, got {self.top_k}")
        self.stop = list(self.stop) if self.stop else None

    def params(self, seed: int | None = None, **overrides: Any):
        from tinker import types

        values = dict(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, stop=self.stop, seed=seed)
        values.update(overrides)
        return types.SamplingParams(**values)


@dataclass
class TrainingSettings:
    """How long and in what batches to train; ``epochs`` (when set) bounds ``max_steps``.

    ``max_tokens_per_forward`` bounds the padded tokens one forward/backward pass holds on the local
    backend (a batch beyond it runs as micro-batches, gradients accumulated); null derives it from
    the model and the free memory (``tinkerx.backends.local.budget``).

    ``packing`` (SFT on backend=local) packs each step's examples into fewer rows no longer than the
    step's longest example nor ``packing_length`` tokens (null: no cap), attention and loss kept inside
    each example (``tinkerx.methods.sft.packing``).
    ``max_cost`` (US dollars at ``conf/prices``) and ``max_tokens`` (prefilled + sampled + trained)
    are budgets: the run stops after the step that reaches one, with a resume point and ``status:
    budget_reached`` (``tinkerx.runs.usage``); null = no budget.
    """

    batch_size: int = 32
    max_steps: int = 100
    epochs: float | None = None
    eval_every: int = 0
    save_every: int = 0
    keep_checkpoints: int | None = None
    max_tokens_per_forward: int | None = None
    packing: bool = False
    packing_length: int | None = None
    max_cost: float | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        _check_types(self, "training")
        _require(self.batch_size >= 1, f"training.batch_size must be >= 1, got {self.batch_size}")
        _require(self.max_steps >= 1, f"training.max_steps must be >= 1, got {self.max_steps}")
        _require(self.epochs is None or self.epochs > 0, f"training.epochs must be > 0 or null, got {self.epochs}")
        _require(self.eval_every >= 0, f"training.eval_every must be >= 0 (0 disables), got {self.eval_every}")
        _require(self.save_every >= 0, f"training.save_every must be >= 0 (0 disables), got {self.save_every}")
        _require(self.keep_checkpoints is None or self.keep_checkpoints >= 1, f"training.keep_checkpoints must be >= 1 or null (keep all), got {self.keep_checkpoints}")
        _require(self.max_tokens_per_forward is None or self.max_tokens_per_forward >= 1,
                 f"training.max_tokens_per_forward must be >= 1 or null (derived from the model and free memory), got {self.max_tokens_per_forward}")
        _require(isinstance(self.packing, bool), f"training.packing must be true or false, got {self.packing!r}")
        _require(self.packing_length is None or self.packing_length >= 2, f"training.packing_length must be >= 2 or null, got {self.packing_length}")
        _require(self.max_cost is None or self.max_cost > 0, f"training.max_cost must be > 0 (US dollars) or null (no budget), got {self.max_cost}")
        _require(self.max_tokens is None or self.max_tokens >= 1, f"training.max_tokens must be >= 1 or null (no budget), got {self.max_tokens}")

    def total_steps(self, num_examples: int) -> int:
        if self.epochs is None:
            return self.max_steps
        return max(1, min(self.max_steps, math.ceil(self.epochs * num_examples / self.batch_size)))

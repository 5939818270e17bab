"""Overfitting, told from the losses SFT records: validation rising while training falls."""

from __future__ import annotations

from typing import Any


class OverfitWatch:
    """Flags overfitting: validation loss rising for ``patience`` checks while training loss falls."""

    def __init__(self, patience: int) -> None:
        self.patience, self.warnings = patience, 0
        self._train: list[float] = []
        self._val: list[float] = []

    def update(self, train_loss: float, val_loss: float) -> str | None:
        self._train.append(train_loss)
        self._val.append(val_loss)
        k = self.patience
        if len(self._val) <= k:
            return None
        val_rising = all(b > a for a, b in zip(self._val[-k - 1 : -1], self._val[-k:]))
        train_falling = self._train[-1] < self._train[-k - 1]
        if val_rising and train_falling:
            self.warnings += 1
            return f"validation loss rose {k} checks in a row ({self._val[-k - 1]:.4f} -> {self._val[-1]:.4f}) while training loss fell: overfitting"
        return None

    def state(self) -> dict[str, Any]:
        return {"warnings": self.warnings, "train": self._train, "val": self._val}

    def load_state(self, state: dict[str, Any]) -> None:
        self.warnings, self._train, self._val = state["warnings"], list(state["train"]), list(state["val"])

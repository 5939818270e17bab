"""A rotating pool of training prompts: every prompt once per pass, a fresh shuffle each pass."""

from __future__ import annotations

import random
from typing import Any, Generic, Sequence, TypeVar

from tinkerx.runs.rng import restore_random_state

T = TypeVar("T")


class PromptPool(Generic[T]):
    """``take(n)`` returns the next ``n`` items; none repeats before the whole pool has been used.

    When a pass runs out mid-batch, the next pass's shuffle fills the batch, skipping items already
    in it, so a batch never holds the same prompt twice (as long as ``n <= len(items)``).
    """

    def __init__(self, items: Sequence[T], seed: int) -> None:
        if not items:
            raise ValueError("the prompt pool is empty: the data set has no training examples")
        self.items = list(items)
        self.passes = 0
        self._rng = random.Random(seed)
        self._order: list[int] = []

    def __len__(self) -> int:
        return len(self.items)

    def take(self, n: int) -> list[T]:
        batch: list[int] = []
        while len(batch) < n:
            if not self._order:
                self._order = self._shuffled(exclude=set(batch))
            batch.append(self._order.pop(0))
        return [self.items[i] for i in batch]

    def _shuffled(self, exclude: set[int]) -> list[int]:
        self.passes += 1
        order = list(range(len(self.items)))
        self._rng.shuffle(order)
        # Items already in the current batch go last in the new pass: no duplicate within a batch.
        return [i for i in order if i not in exclude] + [i for i in order if i in exclude]

    def state(self) -> dict[str, Any]:
        """Position in the current pass and the shuffle stream, for an exact resume."""
        return {"passes": self.passes, "order": list(self._order), "rng": self._rng.getstate()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.passes, self._order = state["passes"], list(state["order"])
        self._rng.setstate(restore_random_state(state["rng"]))

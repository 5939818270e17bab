"""Carving and capping splits the same way for every data set, so sizes and seeds mean one thing."""

from __future__ import annotations

from tinkerx.data.base import holdout_split
from tinkerx.example import Example
from tinkerx.errors import ConfigError


def assign_splits(
    name: str,
    train: list[Example],
    test: list[Example] | None,
    *,
    validation_size: int,
    test_size: int,
    max_train: int | None,
    max_test: int | None,
    seed: int,
) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, validation, test) from a source's train items and its test items, if it has any.

    A source without a test split gives up ``test_size`` items of ``train`` to it; validation is
    always carved from ``train``. Both carves happen before the caps, so ``max_train`` and
    ``max_test`` never change which items are held out.
    """
    if test is None:
        train, test = _carve(name, train, test_size, "test_size", seed)
    train, validation = _carve(name, train, validation_size, "validation_size", seed)
    return take(train, max_train, seed), validation, take(test, max_test, seed)


def take(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    """A seeded random ``n`` of ``examples`` in their original order; all when ``n`` is None."""
    if n is None or n >= len(examples):
        return examples
    return holdout_split(examples, n, seed)[1]


def _carve(name: str, train: list[Example], size: int, key: str, seed: int) -> tuple[list[Example], list[Example]]:
    if size <= 0 or not train:
        return train, []
    if size >= len(train):
        raise ConfigError(f"{name}: {key}={size} leaves no training examples out of {len(train)}")
    return holdout_split(train, size, seed)

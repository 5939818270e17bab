"""Synthetic arithmetic: seeded, disjoint splits, difficulty set by digits and operations."""

from __future__ import annotations

import random

from tinkerx.data.base import Dataset, PromptFormat
from tinkerx.example import Example
from tinkerx.errors import ConfigError

OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


class Arithmetic(Dataset):
    name = "arithmetic"

    def __init__(
        self,
        digits: int = 2,
        operations: list[str] | tuple[str, ...] = ("+",),
        train_size: int = 4000,
        validation_size: int = 200,
        test_size: int = 200,
        seed: int = 0,
        prompt: PromptFormat | None = None,
        max_tokens: int = 16,
        overlong: str = "drop",
        max_length: int | None = None,
        train_carry_slips: float = 0.0,
    ) -> None:
        super().__init__(prompt, max_tokens, overlong, max_length)
        if not 0.0 <= train_carry_slips <= 1.0:
            raise ConfigError(f"dataset.train_carry_slips must be a fraction in [0, 1], got {train_carry_slips}")
        if train_carry_slips and "+" not in operations:
            raise ConfigError("dataset.train_carry_slips applies to additions; dataset.operations has no '+'")
        if digits < 1:
            raise ConfigError(f"dataset.digits must be >= 1, got {digits}")
        bad = [op for op in operations if op not in OPERATIONS]
        if bad or not operations:
            raise ConfigError(f"dataset.operations: unknown {bad or 'empty list'}; valid: {', '.join(OPERATIONS)}")
        low, high = 10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1
        space = (high - low + 1) ** 2 * len(operations)
        total = train_size + validation_size + test_size
        if total > space:
            raise ConfigError(f"dataset: {total} problems requested but only {space} distinct {digits}-digit problems exist")
        rng = random.Random(seed)
        seen: set[tuple[int, str, int]] = set()
        problems: list[Example] = []
        # Rejection sampling keeps every split disjoint: no held-out problem is ever trained on.
        while len(problems) < total:
            a, b, op = rng.randint(low, high), rng.randint(low, high), rng.choice(list(operations))
            if (a, op, b) in seen:
                continue
            seen.add((a, op, b))
            problems.append(Example(question=f"{a}{op}{b}=", answer=str(OPERATIONS[op](a, b)), id=f"{a}{op}{b}"))
        self.test = problems[:test_size]
        self.validation = problems[test_size : test_size + validation_size]
        self.train = problems[test_size + validation_size :]
        if train_carry_slips:
            self.train = _slip_carries(self.train, train_carry_slips, seed)
        self.check_prompt("arithmetic problems")


def _slip_carries(train: list[Example], rate: float, seed: int) -> list[Example]:
    """``train`` with the ones-digit carry dropped from ``rate`` of its carrying additions (47+38 -> 75).

    An imperfect demonstrator with one systematic mistake: a model trained on it to convergence
    answers every carrying addition the slipped way (greedy), whatever the seed or thread count, and
    samples the right answer often enough for a verifiable reward to teach the carry. Held-out splits
    stay right. Drawn from its own generator, so the problems themselves do not move with ``rate``.
    """
    rng = random.Random(f"carry-slips-{seed}")
    slipped = []
    for ex in train:
        a, op, b = ex.id.partition("+")
        if op and (int(a) % 10 + int(b) % 10) >= 10 and rng.random() < rate:
            ex = Example(question=ex.question, answer=str(int(a) + int(b) - 10), id=ex.id)
        slipped.append(ex)
    return slipped

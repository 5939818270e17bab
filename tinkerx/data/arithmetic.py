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
    ) -> None:
        super().__init__(prompt, max_tokens, overlong, max_length)
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
        self.check_prompt("arithmetic problems")

"""``dataset=py_functions``: generated one-line function tasks, graded by running asserts.

"Write a Python function f(x) that returns x * 7." (``question``, for chat models) or the one-line
spec "f(x) = x * 7" (the field ``spec``, the tiny model's prompt), with three asserts on f and the
one-line ``def f(x): return x * 7`` as the reference. Regular enough for the 1M-parameter tiny model
to learn on a CPU (the code-RL demo: SFT warm start, then GRPO with ``reward=code_tests``); every
split holds different (operation, number) pairs, so held-out pass@1 measures writing a function
never seen, not recalling one.
"""

from __future__ import annotations

import random
from dataclasses import replace

from tinkerx.data.base import Dataset, PromptFormat
from tinkerx.errors import ConfigError
from tinkerx.example import Example
from tinkerx.rewards.code_tests import problem_json

OPERATIONS = {"+": lambda x, n: x + n, "-": lambda x, n: x - n, "*": lambda x, n: x * n}


class PyFunctions(Dataset):
    name = "py_functions"

    def __init__(
        self,
        operations: list[str] | tuple[str, ...] = ("+", "-", "*"),
        max_number: int = 99,
        validation_size: int = 30,
        test_size: int = 60,
        seed: int = 0,
        prompt: PromptFormat | None = None,
        max_tokens: int = 32,
        overlong: str = "drop",
        max_length: int | None = None,
        train_sign_slips: float = 0.0,
    ) -> None:
        super().__init__(prompt, max_tokens, overlong, max_length)
        bad = [op for op in operations if op not in OPERATIONS]
        if bad or not operations:
            raise ConfigError(f"dataset.operations: unknown {bad or 'empty list'}; valid: {', '.join(OPERATIONS)}")
        if not 0.0 <= train_sign_slips <= 1.0:
            raise ConfigError(f"dataset.train_sign_slips must be a fraction in [0, 1], got {train_sign_slips}")
        if train_sign_slips and "-" not in operations:
            raise ConfigError("dataset.train_sign_slips applies to subtractions; dataset.operations has no '-'")
        pairs = [(op, n) for op in operations for n in range(max_number + 1)]
        if validation_size + test_size >= len(pairs):
            raise ConfigError(f"dataset: validation_size + test_size must leave training tasks out of {len(pairs)}")
        random.Random(seed).shuffle(pairs)
        rng = random.Random(seed + 1)
        examples = [_task(op, n, rng) for op, n in pairs]
        self.test = examples[:test_size]
        self.validation = examples[test_size : test_size + validation_size]
        self.train = examples[test_size + validation_size :]
        if train_sign_slips:
            self.train = _slip_signs(self.train, train_sign_slips, seed)
        self.check_prompt("generated function tasks")


def _slip_signs(train: list[Example], rate: float, seed: int) -> list[Example]:
    """``train`` with ``rate`` of its subtraction tasks' reference solutions written with ``+``
    ("f(x) = x - 7" -> ``def f(x): return x + 7``): an imperfect demonstrator with one systematic
    mistake, for the code reward to correct (the warm start of the code-RL demo). The asserts, the
    prompt and the held-out splits stay right; drawn from their own generator, so the tasks do not
    move with ``rate``."""
    rng = random.Random(f"sign-slips-{seed}")
    slipped = []
    for ex in train:
        if ex.solution and " - " in ex.solution and rng.random() < rate:
            ex = replace(ex, solution=ex.solution.replace(" - ", " + "))
        slipped.append(ex)
    return slipped


def _task(op: str, n: int, rng: random.Random) -> Example:
    xs = rng.sample(range(-20, 50), 3)
    tests = [f"assert f({x}) == {OPERATIONS[op](x, n)}" for x in xs]
    return Example(
        question=f"Write a Python function f(x) that returns x {op} {n}.",
        answer=problem_json(tests, entry_point="f"),
        id=f"f(x)=x{op}{n}",
        solution=f"def f(x): return x {op} {n}",
        fields={"spec": f"f(x) = x {op} {n}"},
    )

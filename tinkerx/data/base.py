"""What every data set offers the methods: three splits and a way to phrase a prompt."""

from __future__ import annotations

import string
from dataclasses import dataclass

from tinkerx.example import Example
from tinkerx.errors import ConfigError, DataError

STANDARD_FIELDS = ("question", "answer", "solution", "choices")
OVERLONG_RULES = ("drop", "truncate", "error")  # dataset.overlong: see tinkerx/data/lengths.py


@dataclass
class PromptFormat:
    """How an example becomes chat messages and an SFT target.

    ``template`` and ``target`` are ``str.format`` patterns over ``question``, ``answer``,
    ``solution`` and ``choices`` (the choices already lettered, one per line), and over any field
    of the source record (``"{Body} {Question}"`` for SVAMP-style files).
    """

    template: str = "{question}"
    system: str | None = None
    target: str = "{answer}"

    def field_names(self) -> list[str]:
        """Every field the template, the target and the system prompt name, in order, once."""
        names = []
        for pattern in (self.system or "", self.template, self.target):
            for _, name, _, _ in string.Formatter().parse(pattern):
                if name is not None:
                    name = name.split(".")[0].split("[")[0]
                    if name and name not in names:
                        names.append(name)
        return names

    def check(self, example: Example, source: str) -> None:
        """DataError naming any field the prompt uses that ``example`` (from ``source``) lacks."""
        available = set(example.fields) | set(STANDARD_FIELDS)
        missing = [n for n in self.field_names() if n not in available]
        if missing:
            raise DataError(
                f"dataset.prompt names field(s) {', '.join(missing)} that {source} does not have; "
                f"its fields: {', '.join(sorted(example.fields)) or 'none'} (and {', '.join(STANDARD_FIELDS)})"
            )

    def fields(self, example: Example) -> dict[str, str]:
        lettered = "\n".join(f"{chr(65 + i)}) {c}" for i, c in enumerate(example.choices))
        # The record's own fields first: the standard names mean the same thing for every data set.
        return {
            **example.fields,
            "question": example.question,
            "answer": example.answer,
            "solution": example.solution if example.solution is not None else example.answer,
            "choices": lettered,
        }

    def messages(self, example: Example) -> list[dict[str, str]]:
        user = self.template.format(**self.fields(example))
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return messages + [{"role": "user", "content": user}]

    def completion(self, example: Example) -> str:
        return self.target.format(**self.fields(example))


class Dataset:
    """Held splits of ``Example`` plus the prompt format.

    Subclasses fill ``train``, ``validation`` and ``test`` in ``__init__``; a split a source lacks
    is carved from ``train`` with ``holdout_split`` so evaluation never sees training items.

    ``max_tokens`` is the generation budget a full answer needs (``sampling.max_tokens`` follows it;
    a suite's benchmarks are sampled with their own). ``test_carved_from`` names the file the test
    split was held out of when the source has no test split of its own (None otherwise).

    ``overlong`` and ``max_length`` say what happens to an example longer than the model's context
    (or ``max_length`` tokens, when set): see ``tinkerx.data.lengths``, which applies them before
    step 1. A cut reply is kept in ``truncated`` (example -> its cut completion).
    """

    name: str = "dataset"

    def __init__(self, prompt: PromptFormat | None = None, max_tokens: int = 512, overlong: str = "drop", max_length: int | None = None) -> None:
        if max_tokens < 1:
            raise ConfigError(f"dataset.max_tokens must be >= 1, got {max_tokens}")
        if overlong not in OVERLONG_RULES:
            raise ConfigError(f"dataset.overlong must be one of {', '.join(OVERLONG_RULES)}, got {overlong!r}")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2):
            raise ConfigError(f"dataset.max_length must be an integer >= 2 or null (the model's context_length), got {max_length!r}")
        self.prompt = prompt or PromptFormat()
        self.max_tokens = max_tokens
        self.overlong, self.max_length = overlong, max_length
        self.truncated: dict[Example, str] = {}
        self.train: list[Example] = []
        self.validation: list[Example] = []
        self.test: list[Example] = []
        self.test_carved_from: str | None = None

    def check_prompt(self, source: str) -> None:
        """Fail now, not at the first prompt, when the prompt names a field the records lack."""
        first = next((split[0] for split in (self.train, self.validation, self.test) if split), None)
        if first is not None:
            self.prompt.check(first, source)

    def split(self, name: str) -> list[Example]:
        if name not in ("train", "validation", "test"):
            raise ValueError(f"unknown split {name!r}; valid: train, validation, test")
        return getattr(self, name)

    def messages(self, example: Example) -> list[dict[str, str]]:
        return self.prompt.messages(example)

    def completion(self, example: Example) -> str:
        if example in self.truncated:
            return self.truncated[example]
        return self.prompt.completion(example)


def holdout_split(examples: list[Example], size: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Deterministically move ``size`` examples out of ``examples``: returns (rest, held_out)."""
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:size])
    rest = [e for i, e in enumerate(examples) if i not in held]
    return rest, [examples[i] for i in sorted(held)]

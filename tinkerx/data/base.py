"""What every data set offers the methods: three splits and a way to phrase a prompt."""

from __future__ import annotations

from dataclasses import dataclass

from tinkerx.data.example import Example


@dataclass
class PromptFormat:
    """How an example becomes chat messages and an SFT target.

    ``template`` and ``target`` are ``str.format`` patterns over ``question``, ``answer``,
    ``solution`` and ``choices`` (the choices already lettered, one per line).
    """

    template: str = "{question}"
    system: str | None = None
    target: str = "{answer}"

    def fields(self, example: Example) -> dict[str, str]:
        lettered = "\n".join(f"{chr(65 + i)}) {c}" for i, c in enumerate(example.choices))
        return {
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
    """

    name: str = "dataset"

    def __init__(self, prompt: PromptFormat | None = None) -> None:
        self.prompt = prompt or PromptFormat()
        self.train: list[Example] = []
        self.validation: list[Example] = []
        self.test: list[Example] = []

    def split(self, name: str) -> list[Example]:
        if name not in ("train", "validation", "test"):
            raise ValueError(f"unknown split {name!r}; valid: train, validation, test")
        return getattr(self, name)

    def messages(self, example: Example) -> list[dict[str, str]]:
        return self.prompt.messages(example)

    def completion(self, example: Example) -> str:
        return self.prompt.completion(example)


def holdout_split(examples: list[Example], size: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Deterministically move ``size`` examples out of ``examples``: returns (rest, held_out)."""
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:size])
    rest = [e for i, e in enumerate(examples) if i not in held]
    return rest, [examples[i] for i in sorted(held)]

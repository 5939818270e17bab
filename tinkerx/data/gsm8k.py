"""GSM8K grade-school word problems (openai/gsm8k): reasoning, then ``#### <number>``."""

from __future__ import annotations

import re
from typing import Any

from tinkerx.data.base import Dataset, PromptFormat
from tinkerx.example import Example, record_fields
from tinkerx.data.hub import load_hub_rows
from tinkerx.data.jsonl import read_jsonl
from tinkerx.data.splits import assign_splits
from tinkerx.errors import DataError

_FINAL = re.compile(r"####\s*(.+?)\s*$")


class GSM8K(Dataset):
    """Train and test from local JSONL files (``question``, ``answer``) or, with neither path, the hub.

    With only ``path``, the test split is carved from it (``test_size``); with only ``test_path``,
    there is no training data (enough for evaluation). ``answer`` is the number after ``####``
    without commas; ``solution`` is the full reference answer, calculator notes included.
    """

    name = "gsm8k"

    def __init__(
        self,
        path: str | None = None,
        test_path: str | None = None,
        validation_size: int = 200,
        test_size: int = 500,
        max_train: int | None = None,
        max_test: int | None = None,
        seed: int = 0,
        prompt: PromptFormat | None = None,
        max_tokens: int = 512,
        overlong: str = "drop",
        max_length: int | None = None,
    ) -> None:
        super().__init__(prompt, max_tokens, overlong, max_length)
        if path is None and test_path is None:
            hint = (
                "gsm8k: the Hugging Face hub is unreachable; point at local files with "
                "dataset.path=TRAIN.jsonl dataset.test_path=TEST.jsonl"
            )
            train_rows = load_hub_rows("openai/gsm8k", "main", "train", hint)
            test_rows = load_hub_rows("openai/gsm8k", "main", "test", hint)
            sources = ("openai/gsm8k:train", "openai/gsm8k:test")
        else:
            required = ("question", "answer")
            train_rows = read_jsonl(path, required, text=required) if path else []
            test_rows = read_jsonl(test_path, required, text=required) if test_path else None
            sources = (str(path), str(test_path))
        train = [_example(row, i, "train", sources[0]) for i, row in enumerate(train_rows)]
        test = None if test_rows is None else [_example(row, i, "test", sources[1]) for i, row in enumerate(test_rows)]
        self.train, self.validation, self.test = assign_splits(
            self.name, train, test,
            validation_size=validation_size, test_size=test_size,
            max_train=max_train, max_test=max_test, seed=seed,
        )
        if test is None:
            self.test_carved_from = sources[0]
        self.check_prompt(str(path or test_path or sources[0]))


def _example(row: dict[str, Any], index: int, split: str, source: str) -> Example:
    solution = str(row["answer"])
    final = _FINAL.search(solution)
    if final is None:
        raise DataError(f"{source}: record {index + 1}: answer has no final '#### <number>' line")
    return Example(
        question=str(row["question"]),
        answer=final.group(1).replace(",", ""),
        id=f"gsm8k-{split}-{index}",
        solution=solution,
        fields=record_fields(row),
    )

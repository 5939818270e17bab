"""MATH competition problems; the test split is MATH-500.

Online, test is ``HuggingFaceH4/MATH-500`` and train is the 7,500-problem train split of
``EleutherAI/hendrycks_math`` (all seven subjects). MATH-500 was drawn from the original MATH
*test* split, so the two never share a problem. (``qwedsacf/competition_math`` was passed over:
its one split mixes train and test, MATH-500 included.)
"""

from __future__ import annotations

from typing import Any

from tinkerx.data.base import Dataset, PromptFormat
from tinkerx.example import Example, record_fields
from tinkerx.data.hub import load_hub_rows
from tinkerx.data.jsonl import read_jsonl
from tinkerx.data.splits import assign_splits
from tinkerx.errors import DataError
from tinkerx.rewards.math_equivalence import last_boxed

_SUBJECTS = (
    "algebra", "counting_and_probability", "geometry", "intermediate_algebra",
    "number_theory", "prealgebra", "precalculus",
)


class MATH(Dataset):
    """Train and test from local JSONL files or, with neither path, the hub.

    Local records need ``problem`` and ``solution``; ``answer`` is optional and defaults to the
    last ``\\boxed{}`` of the solution. With only ``path`` the test split is carved from it; with
    only ``test_path`` there is no training data (enough for evaluation).
    """

    name = "math"

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
                "math: the Hugging Face hub is unreachable; point at local files with "
                "dataset.path=TRAIN.jsonl dataset.test_path=TEST.jsonl (e.g. ../shared/data/math500/test.jsonl)"
            )
            train_rows = [
                row for subject in _SUBJECTS
                for row in load_hub_rows("EleutherAI/hendrycks_math", subject, "train", hint)
            ]
            test_rows = load_hub_rows("HuggingFaceH4/MATH-500", None, "test", hint)
            sources = ("EleutherAI/hendrycks_math:train", "HuggingFaceH4/MATH-500:test")
        else:
            required = ("problem", "solution")
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
    solution = str(row["solution"])
    answer = row.get("answer") or last_boxed(solution)
    if not answer:
        raise DataError(f"{source}: record {index + 1}: no 'answer' field and no \\boxed{{}} in the solution")
    return Example(
        question=str(row["problem"]),
        answer=str(answer).strip(),
        id=str(row.get("unique_id") or f"math-{split}-{index}"),
        solution=solution,
        fields=record_fields(row),
    )

"""Any multiple-choice JSON-lines file, read through a field mapping."""

from __future__ import annotations

from typing import Any

from tinkerx.data.base import Dataset, PromptFormat
from tinkerx.example import Example, record_fields
from tinkerx.data.jsonl import read_jsonl
from tinkerx.data.splits import assign_splits
from tinkerx.errors import DataError

LETTERS = "ABCD"  # what MultipleChoiceReward can read back from a completion


class MultipleChoice(Dataset):
    """Questions with 2-4 choices from one file, split into train/validation/test by seed.

    ``answer_field`` holds the index of the correct choice (``answer_is_index``) or its letter;
    either way ``Example.answer`` is the letter and ``Example.choices`` the choices in order.
    """

    name = "multiple_choice"

    def __init__(
        self,
        path: str,
        question_field: str = "question",
        choices_field: str = "choices",
        answer_field: str = "answer",
        answer_is_index: bool = True,
        id_field: str | None = None,
        validation_size: int = 100,
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
        rows = read_jsonl(path, (question_field, choices_field, answer_field), text=(question_field,))
        examples = []
        for i, row in enumerate(rows):
            where = f"{path}: record {i + 1}"
            choices = _choices(row[choices_field], where)
            examples.append(Example(
                question=str(row[question_field]),
                answer=_letter(row[answer_field], answer_is_index, len(choices), where),
                id=str(row[id_field]) if id_field else f"{self.name}-{i}",
                choices=choices,
                fields=record_fields(row),
            ))
        self.train, self.validation, self.test = assign_splits(
            self.name, examples, None,
            validation_size=validation_size, test_size=test_size,
            max_train=max_train, max_test=max_test, seed=seed,
        )
        self.test_carved_from = str(path)
        self.check_prompt(str(path))


def _choices(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not 2 <= len(value) <= len(LETTERS):
        raise DataError(f"{where}: choices must be a list of 2 to {len(LETTERS)} items, got {str(value)[:60]!r}")
    return tuple(str(c) for c in value)


def _letter(value: Any, is_index: bool, n_choices: int, where: str) -> str:
    if is_index:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n_choices:
            return LETTERS[value]
        raise DataError(f"{where}: answer {value!r} is not a choice index 0-{n_choices - 1} (set answer_is_index=false for letters)")
    letter = str(value).strip().strip("().").upper()
    if len(letter) == 1 and letter in LETTERS[:n_choices]:
        return letter
    raise DataError(f"{where}: answer {value!r} is not a choice letter A-{LETTERS[n_choices - 1]} (set answer_is_index=true for indices)")

"""GPQA Diamond: 198 graduate-level science questions (``Idavidrein/gpqa``, config ``gpqa_diamond``).

The hub data set is gated: it needs an HF_TOKEN whose account has accepted its terms. The source
always lists the correct answer first, so the four answers are shuffled per question with a
generator seeded by (seed, record id): the same letters on every run and machine.
"""

from __future__ import annotations

import random
from typing import Any

from tinkerx.data.base import Dataset, PromptFormat
from tinkerx.example import Example
from tinkerx.data.hub import load_hub_rows
from tinkerx.data.multiple_choice import LETTERS
from tinkerx.data.splits import assign_splits
from tinkerx.errors import DataError

_GATED = (
    "gpqa_diamond: Idavidrein/gpqa is gated on the Hugging Face hub and needs network access plus "
    "HF_TOKEN from an account that accepted its terms; offline, use dataset=mcq_jsonl dataset.path=FILE.jsonl"
)


class GPQADiamond(Dataset):
    """The single GPQA Diamond split divided into train/validation/test by seed."""

    name = "gpqa_diamond"

    def __init__(
        self,
        validation_size: int = 20,
        test_size: int = 78,
        max_train: int | None = None,
        max_test: int | None = None,
        seed: int = 0,
        prompt: PromptFormat | None = None,
        max_tokens: int = 512,
        overlong: str = "drop",
        max_length: int | None = None,
    ) -> None:
        super().__init__(prompt, max_tokens, overlong, max_length)
        from huggingface_hub import get_token  # reads HF_TOKEN and a saved `hf auth login`

        if not get_token():
            raise DataError(_GATED + " [no token found]")
        rows = load_hub_rows("Idavidrein/gpqa", "gpqa_diamond", "train", _GATED)
        examples = [_example(row, i, seed) for i, row in enumerate(rows)]
        self.train, self.validation, self.test = assign_splits(
            self.name, examples, None,
            validation_size=validation_size, test_size=test_size,
            max_train=max_train, max_test=max_test, seed=seed,
        )
        self.test_carved_from = "Idavidrein/gpqa:gpqa_diamond"
        self.check_prompt(self.test_carved_from)


def _example(row: dict[str, Any], index: int, seed: int) -> Example:
    record_id = str(row.get("Record ID") or index)
    answers = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    if any(a is None for a in answers):
        raise DataError(f"Idavidrein/gpqa:gpqa_diamond: record {index + 1} lacks one of its four answers")
    order = list(range(4))
    # A string seed is hashed with SHA-512 by random.seed, so it is stable across processes
    # (unlike hash(), which PYTHONHASHSEED randomises).
    random.Random(f"{seed}:{record_id}").shuffle(order)
    return Example(
        question=str(row["Question"]).strip(),
        answer=LETTERS[order.index(0)],
        id=f"gpqa_diamond-{record_id}",
        choices=tuple(str(answers[j]).strip() for j in order),
    )

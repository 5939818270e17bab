"""``dataset=jsonl``: question/answer pairs from any local JSON-lines file, by field mapping.

The prompt template may name any field of the records (``"{Body} {Question}"`` for SVAMP or
ASDiv), so multi-field questions need no code.
"""

from __future__ import annotations

import logging

from tinkerx.data.base import Dataset, PromptFormat, holdout_split
from tinkerx.example import Example, record_fields
from tinkerx.data.jsonl import read_jsonl
from tinkerx.errors import DataError

log = logging.getLogger(__name__)


class JsonlQA(Dataset):
    """Train from ``path``; test from ``test_path``, or held out of ``path`` when there is none.

    Held-out splits never take more than a quarter of the file each, so a small file still trains;
    when that caps ``test_size`` or ``validation_size`` the run says so.
    """

    name = "jsonl"

    def __init__(
        self,
        path: str,
        test_path: str | None = None,
        question_field: str = "question",
        answer_field: str = "answer",
        solution_field: str | None = None,
        validation_size: int = 100,
        test_size: int = 100,
        seed: int = 0,
        prompt: PromptFormat | None = None,
        max_tokens: int = 512,
        overlong: str = "drop",
        max_length: int | None = None,
    ) -> None:
        super().__init__(prompt, max_tokens, overlong, max_length)
        fields = (question_field, answer_field) + ((solution_field,) if solution_field else ())

        def load(p: str) -> list[Example]:
            rows = read_jsonl(p, fields, text=fields)
            examples = [
                Example(
                    question=str(r[question_field]),
                    answer=str(r[answer_field]),
                    id=f"{p}:{i}",
                    solution=str(r[solution_field]) if solution_field else None,
                    fields=record_fields(r),
                )
                for i, r in enumerate(rows)
            ]
            self.prompt.check(examples[0], p)
            for i, (row, example) in enumerate(zip(rows, examples)):
                absent = [n for n in self.prompt.field_names() if n in row and n not in example.fields]
                if absent:  # another record has the field: read_jsonl fills the gap with None
                    raise DataError(f"{p}: record {i + 1} has no value for {', '.join(absent)}, which dataset.prompt names")
            return examples

        examples = load(path)
        if test_path:
            self.test = load(test_path)
        else:
            examples, self.test = holdout_split(examples, _held_out_size(path, "test_size", test_size, len(examples)), seed)
            self.test_carved_from = path
        self.train, self.validation = holdout_split(
            examples, _held_out_size(path, "validation_size", validation_size, len(examples)), seed + 1
        )


def _held_out_size(path: str, key: str, size: int, available: int) -> int:
    capped = min(size, available // 4)
    if capped < size:
        log.warning("%s: dataset.%s=%d capped at %d, a quarter of its %d records", path, key, size, capped, available)
    return capped

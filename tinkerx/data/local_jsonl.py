"""``dataset=jsonl``: question/answer pairs from any local JSON-lines file, by field mapping."""

from __future__ import annotations

from tinkerx.data.base import Dataset, PromptFormat, holdout_split
from tinkerx.data.example import Example
from tinkerx.data.jsonl import read_jsonl


class JsonlQA(Dataset):
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
    ) -> None:
        super().__init__(prompt)
        fields = (question_field, answer_field) + ((solution_field,) if solution_field else ())

        def load(p: str) -> list[Example]:
            return [
                Example(
                    question=str(r[question_field]),
                    answer=str(r[answer_field]),
                    id=f"{p}:{i}",
                    solution=str(r[solution_field]) if solution_field else None,
                )
                for i, r in enumerate(read_jsonl(p, fields))
            ]

        examples = load(path)
        if test_path:
            self.test = load(test_path)
        else:
            examples, self.test = holdout_split(examples, min(test_size, len(examples) // 4), seed)
        self.train, self.validation = holdout_split(examples, min(validation_size, len(examples) // 4), seed + 1)

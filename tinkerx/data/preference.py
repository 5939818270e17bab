"""Preference pairs: a prompt with a chosen and a rejected reply, from a local JSON-lines file.

``dataset=preference_jsonl dataset.path=pairs.jsonl``: one object per line with the prompt and the
two replies (field names configurable). The splits also hold plain ``Example``s (the prompt, with
the chosen reply as answer and SFT target), so SFT on the chosen replies works on the same file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from tinkerx.data.base import Dataset, PromptFormat, holdout_split
from tinkerx.example import Example
from tinkerx.data.jsonl import read_jsonl


@dataclass(frozen=True)
class PreferencePair:
    example: Example  # the prompt (and, for generated pairs, its ground truth)
    chosen: str
    rejected: str

    def row(self) -> dict[str, Any]:
        return {"id": self.example.id, "prompt": self.example.question, "answer": self.example.answer,
                "chosen": self.chosen, "rejected": self.rejected, "example": asdict(self.example)}  # fmt: skip

    @staticmethod
    def from_row(row: dict[str, Any]) -> "PreferencePair":
        fields = dict(row["example"])
        fields["choices"] = tuple(fields.get("choices", ()))
        return PreferencePair(Example(**fields), row["chosen"], row["rejected"])


def write_pairs(path: str | Path, pairs: Sequence[PreferencePair]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p.row()) + "\n" for p in pairs), encoding="utf-8")
    return path


class PreferenceJsonl(Dataset):
    name = "preference_jsonl"

    def __init__(
        self,
        path: str,
        test_path: str | None = None,
        prompt_field: str = "prompt",
        chosen_field: str = "chosen",
        rejected_field: str = "rejected",
        validation_size: int = 0,
        test_size: int = 100,
        seed: int = 0,
        prompt: PromptFormat | None = None,
        max_tokens: int = 512,
        overlong: str = "drop",
        max_length: int | None = None,
    ) -> None:
        super().__init__(prompt, max_tokens, overlong, max_length)
        fields = (prompt_field, chosen_field, rejected_field)

        def load(p: str) -> list[PreferencePair]:
            return [
                PreferencePair(Example(question=str(r[prompt_field]), answer=str(r[chosen_field]), id=f"{p}:{i}", solution=str(r[chosen_field])),
                               str(r[chosen_field]), str(r[rejected_field]))  # fmt: skip
                for i, r in enumerate(read_jsonl(p, fields, text=fields))
            ]

        pairs = load(path)
        if test_path:
            test = load(test_path)
        else:
            pairs, test = holdout_split(pairs, min(test_size, len(pairs) // 4), seed)
        train, validation = holdout_split(pairs, min(validation_size, len(pairs) // 4), seed + 1)
        self.pairs = {"train": train, "validation": validation, "test": test}
        self.train, self.validation, self.test = ([p.example for p in s] for s in (train, validation, test))

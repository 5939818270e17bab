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
from tinkerx.data.chat import read_records
from tinkerx.example import Example


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
    """Pairs from a JSON-lines file. Each of prompt / chosen / rejected may be text or a list of chat messages
    (``tinkerx.data.conversation_pairs``): a message-list or HH-style (``\n\nHuman:`` / ``\n\nAssistant:``)
    prompt is rendered with the model's chat template once and shared by both replies."""

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
        from tinkerx.data.conversation_pairs import pair_turns

        self.prompt_messages: dict[str, list[dict[str, str]]] = {}  # example id -> its conversation, when the file gives one

        def load(p: str) -> list[PreferencePair]:
            pairs = []
            for i, (where, record) in enumerate(read_records(p, "train", None)):
                turns, chosen, rejected = pair_turns(record, prompt_field, chosen_field, rejected_field, where)
                id = f"{p}:{i}"
                if isinstance(turns, list):
                    self.prompt_messages[id] = turns
                    question = next((m["content"] for m in reversed(turns) if m["role"] == "user"), "")
                else:
                    question = turns
                pairs.append(PreferencePair(Example(question=question, answer=chosen, id=id, solution=chosen), chosen, rejected))
            return pairs

        pairs = load(path)
        if test_path:
            test = load(test_path)
        else:
            pairs, test = holdout_split(pairs, min(test_size, len(pairs) // 4), seed)
        train, validation = holdout_split(pairs, min(validation_size, len(pairs) // 4), seed + 1)
        self.pairs = {"train": train, "validation": validation, "test": test}
        self.train, self.validation, self.test = ([p.example for p in s] for s in (train, validation, test))

    def messages(self, example: Example) -> list[dict[str, str]]:
        """A conversation prompt as the file gave it (system prompt and earlier turns kept); a text one through ``dataset.prompt``."""
        if example.id in self.prompt_messages:
            return self.prompt_messages[example.id]
        return super().messages(example)

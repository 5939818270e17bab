"""The teacher's completions for off-policy distillation, sampled once and cached in the run folder.

``teacher_samples.jsonl`` holds one row per kept completion. A resumed run reads it back instead of
sampling again; another run (a reproduction, a sweep over student settings) can reuse it with
``method.samples_path=RUN/teacher_samples.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from tinkerx.chat import decode_completion, prompt_tokens
from tinkerx.data.base import Dataset
from tinkerx.data.jsonl import check_jsonl
from tinkerx.sampler import sample_prompts

CACHE_NAME = "teacher_samples.jsonl"
FIELDS = ("id", "question", "answer", "completion")


def sample_teacher(teacher: Any, dataset: Any, examples: Sequence[Any], num_samples: int, params: Any, reward: Any, filter_correct: bool) -> list[dict[str, Any]]:
    """``num_samples`` teacher completions per example, graded; only the correct ones when ``filter_correct``."""
    prompts = [prompt_tokens(teacher.tokenizer, dataset.messages(ex)) for ex in examples]
    futures = sample_prompts(teacher.client, prompts, num_samples, params)
    rows = [
        {"id": ex.id, "question": ex.question, "answer": ex.answer, "completion": decode_completion(teacher.tokenizer, seq.tokens)}
        for ex, future in zip(examples, futures)
        for seq in future.result().sequences
    ]
    if reward is not None:
        scores = reward.score_batch([r["completion"] for r in rows], [r["answer"] for r in rows])
        for row, score in zip(rows, scores):
            row["reward"] = float(score)
        if filter_correct:
            rows = [r for r in rows if r["reward"] >= 0.5]  # the evaluator's threshold for "correct"
    return rows


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    check_jsonl(path, FIELDS)  # a hand-edited or truncated cache fails as one line naming path and line
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


class TeacherTaught(Dataset):
    """The student's data set: the original prompts, the teacher's completions as SFT targets.

    Prompts are phrased by the original data set (same chat messages the student is evaluated on);
    the validation split keeps its reference answers, so validation loss stays comparable.
    """

    def __init__(self, original: Any, rows: Sequence[dict[str, Any]]) -> None:
        super().__init__(original.prompt, overlong=getattr(original, "overlong", "drop"), max_length=getattr(original, "max_length", None))
        self.name = f"{original.name}+teacher"
        self.original = original
        by_id = {ex.id: ex for ex in original.train}
        self.train = [dataclasses.replace(by_id[r["id"]], solution=r["completion"]) for r in rows if r["id"] in by_id]
        self.validation = [dataclasses.replace(ex, solution=original.completion(ex)) for ex in original.validation]
        self.test = original.test

    def messages(self, example: Any) -> list[dict[str, str]]:
        return self.original.messages(example)

    def completion(self, example: Any) -> str:
        return self.truncated.get(example, example.solution)  # dataset.overlong=truncate: the cut reply

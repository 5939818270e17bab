"""The records a debate leaves: who argued what, every turn with its tokens, and the judge's verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Setup:
    """One question, two answers: ``answers[0]`` is argued by debater A (who speaks first), ``answers[1]`` by B."""

    id: str
    example_id: str
    question: str
    answers: tuple[str, str]
    correct: str  # "A" or "B": the side holding the data set's answer
    letters: tuple[str, str]  # the answers' letters in the data set, for reading logs against it
    # Debates of one question with the same sides (method.training=rl debates a setup group_size
    # times) name the setup they share: the judge reads that question without a debate only once.
    group: str = ""

    @property
    def question_id(self) -> str:
        return self.group or self.id


@dataclass
class Turn:
    speaker: str  # "A" or "B"
    round: int
    text: str
    prompt_tokens: list[int]  # exactly what the debater was sampled from
    tokens: list[int]  # what it wrote, end-of-turn token included when it stopped on its own
    logprobs: list[float]
    stop_reason: str


@dataclass
class Verdict:
    winner: str | None  # "A", "B", or None when the judge names neither (a text reply naming no side)
    raw: str  # the judge's free-text reply, kept for reading
    tokens: list[int]
    p_a: float | None = None  # label-probability verdicts: P(answer A is correct), both orders combined
    text_winner: str | None = None  # ... and the side its free-text reply names, if any (for comparison)
    orders: dict[str, float] | None = None  # ... P(first label) as written and with the sides swapped

    def correct(self, setup: Setup) -> bool | None:
        return None if self.winner is None else self.winner == setup.correct

    def to_json(self, setup: Setup) -> dict[str, Any]:
        out = {"winner": self.winner, "correct": self.correct(setup), "raw": self.raw, "num_tokens": len(self.tokens), "tokens": self.tokens}
        if self.p_a is not None:
            out.update({"p_a": self.p_a, "text_winner": self.text_winner, "p_first_label": self.orders})
        return out


@dataclass
class Transcript:
    setup: Setup
    turns: list[Turn] = field(default_factory=list)
    verdict: Verdict | None = None  # the judge after reading the debate
    alone: Verdict | None = None  # the same judge on the same two answers, with no debate

    @property
    def winner(self) -> str | None:
        return self.verdict.winner if self.verdict else None

    def debater_tokens(self) -> int:
        return sum(len(t.tokens) for t in self.turns)

    def to_json(self, step: int, debaters: dict[str, str]) -> dict[str, Any]:
        s = self.setup
        return {
            "id": s.id,
            "step": step,
            "example_id": s.example_id,
            "question": s.question,
            "answers": {"A": s.answers[0], "B": s.answers[1]},
            "dataset_letters": {"A": s.letters[0], "B": s.letters[1]},
            "correct_side": s.correct,
            "sides": {side: "correct" if side == s.correct else "distractor" for side in ("A", "B")},
            "debaters": debaters,
            "discarded": self.winner is None,  # no parsed verdict: not trained on, not in the accuracy
            "turns": [
                {
                    "speaker": t.speaker,
                    "round": t.round,
                    "text": t.text,
                    "num_prompt_tokens": len(t.prompt_tokens),
                    "tokens": t.tokens,
                    "logprobs": t.logprobs,
                    "stop_reason": t.stop_reason,
                }
                for t in self.turns
            ],
            "verdict": self.verdict.to_json(s) if self.verdict else None,
            "judge_alone": self.alone.to_json(s) if self.alone else None,
        }

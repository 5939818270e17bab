"""Per-step debate metrics and the run's totals: judge accuracy with and without a debate, win rates, lengths.

Accuracies count parsed verdicts only; unparsed ones are reported beside them, and the summary
also gives the accuracy with every unparsed verdict counted wrong, so a judge cannot look better
by failing to answer. With two answers, "the judge picks the correct answer" and "the correct side
wins" are the same event, so ``debate/win_rate_correct`` equals ``judge/accuracy_with_debate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from rich.table import Table

from tinkerx.methods.debate.transcript import Transcript


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def step_metrics(transcripts: Sequence[Transcript]) -> dict[str, Any]:
    parsed = [t for t in transcripts if t.winner is not None]
    alone = [t for t in transcripts if t.alone is not None and t.alone.winner is not None]
    turns = [turn for t in transcripts for turn in t.turns]
    correct_wins = [t.winner == t.setup.correct for t in parsed]
    return {
        "judge/accuracy_with_debate": _rate(correct_wins),
        "judge/accuracy_without_debate": _rate([t.alone.winner == t.setup.correct for t in alone]),
        "judge/unparsed_with_debate": len(transcripts) - len(parsed),
        "judge/unparsed_without_debate": len(transcripts) - len(alone),
        "judge/tokens_mean": _rate([len(t.verdict.tokens) for t in transcripts if t.verdict]),
        **_probability_metrics(transcripts),
        "debate/count": len(transcripts),
        "debate/win_rate_correct": _rate(correct_wins),
        "debate/win_rate_incorrect": _rate([not c for c in correct_wins]),
        "debate/win_rate_first_speaker": _rate([t.winner == "A" for t in parsed]),
        "debate/turns": _rate([len(t.turns) for t in transcripts]),
        "debate/tokens_mean": _rate([t.debater_tokens() for t in transcripts]),
        "debate/turn_tokens_mean": _rate([len(turn.tokens) for turn in turns]),
        "debate/truncated_turn_rate": _rate([turn.stop_reason == "length" for turn in turns]),
    }


def _probability_metrics(transcripts: Sequence[Transcript]) -> dict[str, Any]:
    """For label-probability verdicts: how often the free text alone would have decided, and position bias."""
    read = [t.verdict for t in transcripts if t.verdict is not None and t.verdict.p_a is not None]
    if not read:
        return {}
    orders = [v.orders for v in read if v.orders and "swapped" in v.orders]
    return {
        "judge/text_parsed_with_debate": sum(v.text_winner is not None for v in read),
        "judge/p_a_mean": _rate([v.p_a for v in read]),
        # The side shown first wins in both orders (or loses in both): the verdict moved with position.
        "judge/position_flip_rate": _rate([(o["as_written"] > 0.5) == (o["swapped"] > 0.5) for o in orders]),
        "judge/first_label_rate": _rate([p > 0.5 for o in orders for p in o.values()]),
    }


def paired_difference(with_: Sequence[bool | None], without: Sequence[bool | None]) -> dict[str, Any]:
    """Accuracy with debate minus without, on the questions both judged, with a 95% interval.

    Paired (the same questions): the interval is the normal one on the per-question differences,
    whose spread is smaller than that of two independent accuracies when the conditions agree often.
    """
    pairs = [(float(a), float(b)) for a, b in zip(with_, without) if a is not None and b is not None]
    if not pairs:
        return {"pairs": 0, "difference": None, "ci95": None}
    diffs = [a - b for a, b in pairs]
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) if len(diffs) > 1 else 0.0
    half = 1.96 * math.sqrt(var / len(diffs))
    return {"pairs": len(pairs), "difference": mean, "ci95": [mean - half, mean + half]}


@dataclass
class JudgeTally:
    """One judge condition over the whole run: 1 correct, 0 wrong, None unparsed, per question."""

    outcomes: list[bool | None] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        parsed = [o for o in self.outcomes if o is not None]
        acc = _rate(parsed)
        return {
            "questions": len(self.outcomes),
            "parsed": len(parsed),
            "accuracy": acc,
            "stderr": math.sqrt(acc * (1 - acc) / len(parsed)) if parsed else None,
            "accuracy_unparsed_as_wrong": sum(parsed) / len(self.outcomes) if self.outcomes else None,
        }


@dataclass
class RunTally:
    with_debate: JudgeTally = field(default_factory=JudgeTally)
    without_debate: JudgeTally = field(default_factory=JudgeTally)

    def add(self, transcripts: Sequence[Transcript]) -> None:
        for t in transcripts:
            self.with_debate.outcomes.append(t.verdict.correct(t.setup) if t.verdict else None)
            self.without_debate.outcomes.append(t.alone.correct(t.setup) if t.alone else None)

    def summary(self) -> dict[str, Any]:
        with_, without = self.with_debate.summary(), self.without_debate.summary()
        return {
            "judge_accuracy_with_debate": with_["accuracy"],
            "judge_accuracy_without_debate": without["accuracy"],
            "judge": {"with_debate": with_, "without_debate": without},
            "debate_minus_alone": paired_difference(self.with_debate.outcomes, self.without_debate.outcomes),
        }

    def table(self) -> Table:
        table = Table(title="debate: judge accuracy on the same questions (two answers each; chance = 0.5)")
        for column in ("judge", "questions", "verdicts parsed", "accuracy (parsed)", "± s.e.", "accuracy (unparsed = wrong)"):
            table.add_column(column, justify="left" if column == "judge" else "right")
        for name, tally in (("with debate", self.with_debate), ("without debate", self.without_debate)):
            s = tally.summary()
            table.add_row(name, str(s["questions"]), str(s["parsed"]), _fmt(s["accuracy"]), _fmt(s["stderr"]), _fmt(s["accuracy_unparsed_as_wrong"]))
        diff = paired_difference(self.with_debate.outcomes, self.without_debate.outcomes)
        if diff["pairs"]:
            lo, hi = diff["ci95"]
            table.caption = f"with - without debate, paired on {diff['pairs']} questions: {diff['difference']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f})"
        return table


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"

"""Partial credit for near misses, beside the all-or-nothing grades.

A numeric answer earns the share of its digits right in place (47 for 57 earns 0.5); any other
answer earns the token F1 between the completion's final answer (its last ``\\boxed{}``, else its
last line) and the ground truth, as in SQuAD. A completion the reward graded correct earns 1.0.
"""

from __future__ import annotations

import re
from collections import Counter

from tinkerx.rewards.math_equivalence import last_boxed
from tinkerx.rewards.numeric import extract_number

_PLAIN_NUMBER = re.compile(r"-?[\d,]*\.?\d+")


def partial_credit(completion: str, ground_truth: str, correct: bool = False) -> float:
    if correct:
        return 1.0
    if _PLAIN_NUMBER.fullmatch(ground_truth.strip()):
        guess = extract_number(completion)
        return 0.0 if guess is None else digit_credit(guess, extract_number(ground_truth))
    return token_f1(final_answer(completion), ground_truth)


def digit_credit(guess: float, truth: float) -> float:
    """Share of place-aligned digits that match; 0 when the signs differ."""
    if (guess < 0) != (truth < 0):
        return 0.0
    g, t = _digits(abs(guess)), _digits(abs(truth))
    width = max(len(g), len(t))
    g, t = g.rjust(width), t.rjust(width)  # units under units, tens under tens
    return sum(a == b for a, b in zip(g, t)) / width


def _digits(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def final_answer(completion: str) -> str:
    boxed = last_boxed(completion)
    if boxed is not None:
        return boxed
    lines = [line for line in completion.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def token_f1(prediction: str, truth: str) -> float:
    p, t = _tokens(prediction), _tokens(truth)
    common = sum((Counter(p) & Counter(t)).values())
    if not p or not t or not common:
        return float(p == t)
    precision, recall = common / len(p), common / len(t)
    return 2 * precision * recall / (precision + recall)


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.casefold())

"""GSM8K-style numeric answers: the number after ``####``, else the last number written."""

from __future__ import annotations

import math
import re

# A thousands-separated or plain number, optionally signed and decimal. The look-behind keeps
# "x2" and the "-3" of "16-3" from reading as numbers of their own (the "3" still matches).
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\w.])-?\.\d+")


def extract_number(text: str) -> float | None:
    """The number after the last ``####`` if one follows it, else the last number in ``text``.

    Commas, ``$``, units ("18 dollars") and a trailing period all fall away because only the
    digits are matched.
    """
    _, marker, tail = text.rpartition("####")
    if marker:
        after = _NUMBER.search(tail)
        if after:
            return _to_float(after.group())
    numbers = _NUMBER.findall(text)
    return _to_float(numbers[-1]) if numbers else None


def _to_float(token: str) -> float:
    return float(token.replace(",", ""))


class NumericReward:
    """1.0 when the completion's final number equals the ground truth's, else 0.0."""

    name = "numeric"

    def __init__(self, rel_tol: float = 1e-6) -> None:
        # A relative tolerance so "18.00" == "18" and float round-off never costs a point, yet
        # distinct GSM8K answers (integers, cents at most) never collide.
        self.rel_tol = rel_tol

    def gradable(self, ground_truth: str) -> bool:
        return extract_number(ground_truth) is not None

    def compute_reward(self, completion: str, ground_truth: str) -> float:
        truth = extract_number(ground_truth)
        if truth is None:
            # Raise rather than score 0: a ground truth without a number means the wrong reward
            # for this data set, which start-up validation should catch.
            raise ValueError(f"no number in ground truth {ground_truth[:80]!r}")
        guess = extract_number(completion)
        if guess is None:
            return 0.0
        return 1.0 if math.isclose(guess, truth, rel_tol=self.rel_tol, abs_tol=self.rel_tol) else 0.0

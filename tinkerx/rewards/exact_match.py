"""Exact string match after whitespace normalisation."""

from __future__ import annotations


class ExactMatchReward:
    """1.0 when completion and ground truth are the same text, ignoring surrounding and repeated whitespace."""

    name = "exact_match"

    def __init__(self, ignore_case: bool = False) -> None:
        self.ignore_case = ignore_case

    def _normalise(self, text: str) -> str:
        text = " ".join(text.split())
        return text.casefold() if self.ignore_case else text

    def compute_reward(self, completion: str, ground_truth: str) -> float:
        return 1.0 if self._normalise(completion) == self._normalise(ground_truth) else 0.0

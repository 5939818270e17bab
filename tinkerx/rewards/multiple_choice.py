"""Multiple-choice answers: find the letter A-D a completion settles on."""

from __future__ import annotations

import re

# Strongest evidence first; within a pattern the last match wins, as models restate their pick
# at the end. An upper-case letter needs only a word boundary; a lower-case one must stand alone
# before punctuation or the end, so "the answer is a bit unclear" does not read as "A".
_LETTER = r"(?:([A-D])(?![\w'])|([a-d])(?=\s*(?:$|[.,;:!?)\]*])))"
_PATTERNS = [
    # "Answer: (B)", "the answer is b.", "Final answer: **C**", "correct option is D"
    re.compile(r"(?i:answer)\s*(?:is|:)?\s*(?i:option|choice)?\s*[:\-]?\s*[(\[*\s]*" + _LETTER),
    re.compile(r"(?i:option|choice)\s*(?:is)?\s*[:\-]?\s*[(\[*\s]*" + _LETTER),
    # "**C**", "(B)", "[D]", "\boxed{A}"
    re.compile(r"\*\*\s*\(?([A-Da-d])\)?\s*\*\*|\(([A-D])\)|\[([A-D])\]|\\boxed\{\s*([A-Da-d])\s*\}"),
    # a line that starts with the letter: "B) 42", "C. Paris"
    re.compile(r"^\s*([A-D])[.):]", re.MULTILINE),
    # last resort, any standalone capital: "So C." -- but not the article in "A cat"
    re.compile(r"\b([B-D])(?![\w'])|\b(A)(?![\w'])(?!\s+[a-z])"),
]
# The whole text is just a letter, give or take markup: "b", "(C).", "**D**"
_BARE = re.compile(r"^[\s(\[*]*([A-Da-d])[\s)\].*:]*$")


def extract_choice(text: str) -> str | None:
    """The upper-case letter A-D that ``text`` chooses, or None when it names none clearly."""
    bare = _BARE.match(text)
    if bare:
        return bare.group(1).upper()
    for pattern in _PATTERNS:
        matches = pattern.findall(text)
        if matches:
            last = matches[-1]
            letter = next(g for g in last if g) if isinstance(last, tuple) else last
            return letter.upper()
    return None


class MultipleChoiceReward:
    """1.0 when the letter chosen in the completion is the ground-truth letter."""

    name = "multiple_choice"

    def gradable(self, ground_truth: str) -> bool:
        return extract_choice(ground_truth) is not None

    def compute_reward(self, completion: str, ground_truth: str) -> float:
        truth = extract_choice(ground_truth)
        if truth is None:
            raise ValueError(f"ground truth {ground_truth[:40]!r} is not a choice letter A-D")
        return 1.0 if extract_choice(completion) == truth else 0.0

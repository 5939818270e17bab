"""Reading which side a judge picks: from its free-text reply, or from its label probabilities.

Judges ramble, hedge, add markdown, echo the instructions and quote the answers. The patterns go
from the most explicit ("Winner: B") to the weakest (a lone letter, or the text of exactly one
answer); within a pattern the last match wins, as judges restate their pick at the end. A reply
naming C or D, or nothing at all, is ``None``: the debate is discarded, never guessed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from tinkerx.judges.labels import combine_orders, label_probability  # noqa: F401  (re-exported for debate)
from tinkerx.rewards.multiple_choice import extract_choice

if TYPE_CHECKING:
    from tinkerx.methods.debate.transcript import Setup, Turn

# An upper-case side needs only a word boundary; a lower-case one must stand alone before
# punctuation or the end, so "the winner is a debater who..." does not read as A.
_SIDE = r"[*_`\"'(\[\s]*(?:([AB])(?![\w'])|([ab])(?=[*_`\"')\]]*\s*(?:$|[.,;:!?\n])))"
_NAMED = r"(?i:(?:debater|answer|option|side|choice)\s*)?"
_PATTERNS = [
    # "Winner: B", "**Winner:** debater a.", "the winner is Answer B", "Verdict - A"
    re.compile(r"(?i:winner|verdict|winning side)[*_`\s]*(?:is|:|-|=)?[*_`\s]*" + _NAMED + _SIDE),
    # "Debater A wins", "Answer B is correct", "Debater B's argument is stronger"
    re.compile(
        r"(?i:debater|answer|option|side)\s+([AB])(?!\w)(?:'s (?i:argument|case|answer))?[*_`\"')\]]*\s+"
        r"(?i:wins|won|is (?:the )?(?:winner|correct|right|true|stronger|more convincing|better))"
    ),
    # "I side with B", "I choose Answer A", "I vote for debater b."
    re.compile(r"(?i:side with|choose|pick|select|vote for)\s+" + _NAMED + _SIDE),
    # "the correct answer is Answer B", "the right one is (a)."
    re.compile(r"(?i:correct|right|true|best)\s+(?i:answer|option|choice|one)\s+(?i:is)\s+" + _NAMED + _SIDE),
]
# "Debater A", "Answer B", "Debater B's", a line opening "A: ...": names of the sides, which say
# nothing about who won ("A: 20.3" is then read by its answer text).
_LABEL = re.compile(r"(?i:debater|answer|option|side)\s+[AB](?!\w)(?:'s)?|^[ \t]*[AB]:(?=[ \t]*\S)", re.MULTILINE)
# The instruction itself, when a judge repeats it: 'Reply with "Winner: A" or "Winner: B"'.
_ECHO = re.compile(r"[\"']?winner:?\s*a[\"']?\s*or\s*[\"']?(?:winner:?\s*)?b\b[\"']?", re.IGNORECASE)


def parse_verdict(text: str, answers: Sequence[str] = ()) -> str | None:
    """``"A"``, ``"B"`` or ``None`` from a judge's reply; ``answers`` are the two answers' texts, A's first."""
    text = _ECHO.sub(" ", text or "").strip()
    if not text:
        return None
    for pattern in _PATTERNS:
        matches = pattern.findall(text)
        if matches:
            last = matches[-1]
            return next(g for g in last if g).upper() if isinstance(last, tuple) else last.upper()
    # "The answer is (B)", "**A**", "B." -- but C or D names neither debated answer.
    letter = extract_choice(_LABEL.sub(" ", text))
    if letter is not None:
        return letter if letter in "AB" else None
    return _quoted_answer(text, answers)


def _quoted_answer(text: str, answers: Sequence[str]) -> str | None:
    """The side whose answer text, and only it, appears in the reply."""
    if len(answers) != 2:
        return None
    a, b, folded = _fold(answers[0]), _fold(answers[1]), _fold(text)
    if not a or not b or a in b or b in a:  # one answer inside the other proves nothing
        return None
    found = [side for side, answer in (("A", a), ("B", b)) if answer in folded]
    return found[0] if len(found) == 1 else None


def _fold(s: str) -> str:
    return " ".join(s.lower().split())


# Verdicts from the judge's label probabilities: shared with every judge (tinkerx/judges/labels.py).


_LABELLED = re.compile(r"\b(Answer|Debater|Option|Side|answer|debater|option|side)\s+([AB])\b")


def swap_labels(text: str) -> str:
    """'Answer A' <-> 'Answer B' (and Debater/Option/Side) in a debater's text, for the swapped order."""
    return _LABELLED.sub(lambda m: f"{m.group(1)} {'B' if m.group(2) == 'A' else 'A'}", text)


def swapped(setup: "Setup", turns: "Sequence[Turn] | None") -> tuple["Setup", "list[Turn] | None"]:
    """The same debate with the sides' labels exchanged: answer B shown first, as A, and so on."""
    from dataclasses import replace

    flipped = replace(
        setup,
        answers=(setup.answers[1], setup.answers[0]),
        correct="B" if setup.correct == "A" else "A",
        letters=(setup.letters[1], setup.letters[0]),
    )
    if turns is None:
        return flipped, None
    return flipped, [replace(t, speaker="B" if t.speaker == "A" else "A", text=swap_labels(t.text)) for t in turns]

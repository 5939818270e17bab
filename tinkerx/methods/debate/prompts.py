"""What the debaters and the judge read, as chat messages.

Only the two debated answers are shown, relabelled A and B by position, never the data set's own
four letters: the judge's choice is then the same two-way choice with and without a debate, and
"A" always means the first speaker's answer.
"""

from __future__ import annotations

from typing import Sequence

from tinkerx.example import Example
from tinkerx.methods.debate.transcript import Setup, Turn

SIDES = ("A", "B")

DEBATER = """You are debater {side} in a debate about a question. A judge will read the debate and decide which answer is correct.

Question: {question}

Answer A: {answer_a}
Answer B: {answer_b}

You argue that Answer {side} is correct; your opponent argues for Answer {other}.
{transcript}
This is round {round} of {rounds}. In a few sentences, give your strongest argument for Answer {side}{rebut}."""

# The transcript comes first and the question last, so the instruction is the last thing the judge
# reads; put after the transcript, small judges carry on writing the debate instead of judging it.
JUDGE = """Here is a debate between two debaters about a question.
{transcript}
Question: {question}

Answer A: {answer_a}
Answer B: {answer_b}

Exactly one of the two answers is correct. Which one? Reply with "Winner: A" or "Winner: B"."""

# The same ending as JUDGE, without the debate: the baseline differs from it in the debate alone.
ALONE = """Question: {question}

Answer A: {answer_a}
Answer B: {answer_b}

Exactly one of the two answers is correct. Which one? Reply with "Winner: A" or "Winner: B"."""


def other(side: str) -> str:
    return "B" if side == "A" else "A"


def format_transcript(turns: Sequence[Turn]) -> str:
    if not turns:
        return ""
    lines = [f"Debater {t.speaker} (for Answer {t.speaker}), round {t.round}: {t.text.strip()}" for t in turns]
    return "\nThe debate so far:\n" + "\n\n".join(lines) + "\n"


def debater_messages(setup: Setup, turns: Sequence[Turn], side: str, round_: int, rounds: int) -> list[dict[str, str]]:
    text = DEBATER.format(
        side=side,
        other=other(side),
        question=setup.question,
        answer_a=setup.answers[0],
        answer_b=setup.answers[1],
        transcript=format_transcript(turns),
        round=round_,
        rounds=rounds,
        rebut=" and answer your opponent" if turns else "",
    )
    return [{"role": "user", "content": text}]


def judge_messages(setup: Setup, turns: Sequence[Turn] | None) -> list[dict[str, str]]:
    """The judge's prompt after a debate, or, with ``turns=None``, the same question with no debate."""
    fields = dict(question=setup.question, answer_a=setup.answers[0], answer_b=setup.answers[1])
    if turns is None:
        return [{"role": "user", "content": ALONE.format(**fields)}]
    return [{"role": "user", "content": JUDGE.format(transcript=format_transcript(turns), **fields)}]


# ---- debate as an environment (method.training=rl): each debater's conversation grows turn by turn ----
# A role's next prompt must extend its previous one (tinkerx/envs/render.py), so a debater is not
# shown the whole transcript again each turn as above: it reads the question once, then each of its
# opponent's arguments as a new message.

OPENING = """You are debater {side} in a debate about a question. A judge will read the debate and decide which answer is correct.

Question: {question}

Answer A: {answer_a}
Answer B: {answer_b}

You argue that Answer {side} is correct; your opponent argues for Answer {other}. The debate has {rounds} rounds.
{heard}This is round {round} of {rounds}. In a few sentences, give your strongest argument for Answer {side}{rebut}."""

REPLY = """Debater {other} (for Answer {other}), round {their_round}: {text}

This is round {round} of {rounds}. In a few sentences, give your strongest argument for Answer {side} and answer your opponent."""


def _heard(other_side: str, their_round: int, text: str) -> str:
    return f"\nDebater {other_side} (for Answer {other_side}), round {their_round}: {text.strip()}\n\n"


def opening_messages(setup: Setup, side: str, round_: int, rounds: int, opponent: tuple[int, str] | None) -> list[dict[str, str]]:
    """A debater's first message: the question, its side, and (debater B) the argument it answers."""
    heard = _heard(other(side), *opponent) if opponent else ""
    text = OPENING.format(side=side, other=other(side), question=setup.question, answer_a=setup.answers[0], answer_b=setup.answers[1],
                          rounds=rounds, round=round_, heard=heard, rebut=" and answer your opponent" if opponent else "")  # fmt: skip
    return [{"role": "user", "content": text}]


def reply_messages(side: str, round_: int, rounds: int, opponent: tuple[int, str]) -> list[dict[str, str]]:
    """What a debater reads before its next turn: only its opponent's latest argument."""
    their_round, text = opponent
    return [{"role": "user", "content": REPLY.format(other=other(side), their_round=their_round, text=text.strip(), round=round_, rounds=rounds, side=side)}]


# ---- the length check (tinkerx/data/lengths.py): what a debate of a question renders at its longest ----


def longest_prompts(example: Example, rounds: int, training: str) -> list[list[dict[str, str]]]:
    """The longest prompts a debate of ``example`` renders, each with its arguments left empty (the
    length check adds their budget, ``sampling.max_tokens`` a turn): the judge's after the whole
    debate and the last debater's (its transcript re-rendered, or with ``training=rl`` its
    conversation grown turn by turn), once against each distractor, since any may be drawn."""
    if len(example.choices) < 2:
        return []  # not multiple choice: the method's own check names the problem
    truth = ord(example.answer) - ord("A") if example.answer else 0
    empty = [Turn(speaker, r, "", [], [], [], "") for r in range(1, rounds + 1) for speaker in SIDES]
    out = []
    for wrong in (j for j in range(len(example.choices)) if j != truth):
        setup = Setup("length", example.id, example.question, (example.choices[truth], example.choices[wrong]), "A", ("A", "B"))
        out.append(judge_messages(setup, empty))
        if training == "rl":
            # Debater B reads the most: A's opening argument in its own first message.
            conversation = opening_messages(setup, "B", 1, rounds, (1, ""))
            for r in range(2, rounds + 1):
                conversation += [{"role": "assistant", "content": ""}, *reply_messages("B", r, rounds, (r, ""))]
            out.append(conversation)
        else:
            out.append(debater_messages(setup, empty[:-1], "B", rounds, rounds))
    return out

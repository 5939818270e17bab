"""``method.training=rl``: debates as episodes of tinkerx/envs/debate.py, the judge's verdict as their reward.

A step debates each question ``group_size`` times (one group, the same sides), the judge -- a frozen
role of the episode -- writes its reply as the last turn, and the group is scored in one batch by the
method's judge (label probabilities, both orders: judge.py), which also keeps what the rejection
sampling path keeps: each debate's ``Transcript`` with its verdict and the judgement without a debate.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Sequence

from tinkerx.envs.debate import DEBATERS, JUDGE, Argument, DebateGroup, arguments
from tinkerx.envs.episode import Episode
from tinkerx.methods.debate.judge import Judge
from tinkerx.methods.debate.prompts import judge_messages, opening_messages, reply_messages
from tinkerx.methods.debate.transcript import Setup, Transcript, Turn


class DebatePrompts:
    """The debate method's words for the environment's turns (prompts.py)."""

    def opening(self, setup: Setup, side: str, round_: int, rounds: int, opponent: Argument | None) -> list[dict[str, str]]:
        return opening_messages(setup, side, round_, rounds, (opponent.round, opponent.text) if opponent else None)

    def reply(self, setup: Setup, side: str, round_: int, rounds: int, opponent: Argument) -> list[dict[str, str]]:
        return reply_messages(side, round_, rounds, (opponent.round, opponent.text))

    def judge(self, setup: Setup, said: Sequence[Argument]) -> list[dict[str, str]]:
        return judge_messages(setup, [Turn(a.side, a.round, a.text, [], [], [], "") for a in said])


class JudgedGroups:
    """Builds a step's debate groups and keeps, per group, the transcripts its scoring made."""

    def __init__(self, judge: Judge, rounds: int, judge_reads: bool) -> None:
        self.judge, self.rounds, self.judge_reads = judge, rounds, judge_reads
        self.prompts = DebatePrompts()
        self.transcripts: dict[str, list[Transcript]] = {}
        self.seconds = 0.0  # spent judging (inside the runner's collection of the episodes)

    def groups(self, setups: Sequence[Setup]) -> list[DebateGroup]:
        self.transcripts, self.seconds = {}, 0.0
        return [DebateGroup(s, self.rounds, self.prompts, self._score, self.judge_reads) for s in setups]

    def _score(self, setup: Setup, episodes: Sequence[Episode]) -> list[float | None]:
        transcripts = [as_transcript(setup, k, e) for k, e in enumerate(episodes)]
        replies = None
        if self.judge_reads:
            # An episode cut before the judge's turn (a limit, an error) has no reply: "" is no verdict text.
            turns = [e.role_turns(JUDGE) for e in episodes]
            replies = [(t[-1].text, list(t[-1].tokens_T)) if t else ("", []) for t in turns]
        began = time.perf_counter()
        self.judge.judge(transcripts, replies)
        self.seconds += time.perf_counter() - began
        self.transcripts[setup.id] = transcripts
        return [p_correct_a(t) for t in transcripts]

    def in_order(self, setups: Sequence[Setup]) -> list[Transcript]:
        return [t for s in setups for t in self.transcripts.get(s.id, [])]


def as_transcript(setup: Setup, k: int, episode: Episode) -> Transcript:
    """Debate ``k`` of a setup's group, in the records the rejection-sampling path writes."""
    said = arguments(episode)
    turns = [t for t in episode.turns if t.role in DEBATERS]
    return Transcript(
        replace(setup, id=f"{setup.id}_{k:02d}", group=setup.id),
        [Turn(a.side, a.round, t.text, list(t.prompt_T), list(t.tokens_T), list(t.logprobs_T), t.stop_reason) for a, t in zip(said, turns)],
    )


def p_correct_a(t: Transcript) -> float | None:
    """P(A is correct) for the reward: the label probabilities, or 1/0 from a parsed text verdict."""
    v = t.verdict
    if v is None or v.winner is None and v.p_a is None:
        return None
    return v.p_a if v.p_a is not None else float(v.winner == "A")

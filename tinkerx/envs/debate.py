"""Debate as an environment: debater_a and debater_b argue in turn for ``rounds`` rounds, then the judge reads it.

Roles: ``debater_a`` speaks first each round and ``debater_b`` answers; with ``judge_reads`` a third
role, ``judge`` -- a frozen policy, never trained -- writes its reply as the episode's last turn.
Each debater's conversation grows turn by turn (the opening, then only its opponent's new argument),
so its prompts extend one another and the runner builds each debater's training data from exactly
the tokens it sampled: the opponent's words and the template's are glue with mask 0
(``tinkerx.envs.episode.trained_tokens``), and the judge's turn belongs to the judge alone.

Rewards are the group's (``group_rewards``), so the judge reads every debate of a task in one batch:
``score`` returns, per debate, P(answer A is correct) as the judge's label probabilities say (or 1/0
from a parsed text verdict, None for none). Debater A's reward is p_A - p_B = 2 p_A - 1, debater B's
its negation: zero-sum, in [-1, 1], 0 for a debate the judge cannot tell apart or did not decide.

What is said is the caller's (``DebatePrompts``, e.g. tinkerx/methods/debate/prompts.py): this
module knows turns, rounds and roles, not words -- so it stays below the methods that use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from tinkerx.envs.episode import Episode
from tinkerx.envs.protocol import Messages, Observation, StepResult
from tinkerx.envs.runner import EpisodeLimits
from tinkerx.errors import ConfigError

DEBATER_A, DEBATER_B, JUDGE = "debater_a", "debater_b", "judge"
DEBATERS = (DEBATER_A, DEBATER_B)
SIDE_OF = {DEBATER_A: "A", DEBATER_B: "B"}
ROLE_OF = {"A": DEBATER_A, "B": DEBATER_B}


@dataclass(frozen=True)
class Argument:
    side: str    # "A" or "B"
    round: int
    text: str


class DebatePrompts(Protocol):
    def opening(self, task: Any, side: str, round_: int, rounds: int, opponent: Argument | None) -> Messages:
        """A debater's first message (debater B's includes A's first argument, which it answers)."""
        ...

    def reply(self, task: Any, side: str, round_: int, rounds: int, opponent: Argument) -> Messages:
        """What a debater reads before a later turn: its opponent's latest argument."""
        ...

    def judge(self, task: Any, arguments: Sequence[Argument]) -> Messages: ...


def arguments(episode: Episode) -> list[Argument]:
    """The debaters' turns of an episode, in order, with their rounds."""
    said = [t for t in episode.turns if t.role in SIDE_OF]
    return [Argument(SIDE_OF[t.role], i // 2 + 1, t.text) for i, t in enumerate(said)]


def zero_sum(p_a: float | None) -> dict[str, float]:
    """Each debater's reward from P(A is correct): p_own - p_other."""
    if p_a is None:
        return {DEBATER_A: 0.0, DEBATER_B: 0.0}
    return {DEBATER_A: 2.0 * p_a - 1.0, DEBATER_B: 1.0 - 2.0 * p_a}


class DebateEnv:
    def __init__(self, task: Any, rounds: int, prompts: DebatePrompts, judge_reads: bool = True) -> None:
        self.task, self.rounds, self.prompts, self.judge_reads = task, rounds, prompts, judge_reads
        self.said: list[Argument] = []

    def initial_observation(self) -> Observation:
        return Observation(DEBATER_A, self.prompts.opening(self.task, "A", 1, self.rounds, None))

    def step(self, role: str, text: str) -> StepResult:
        if role == JUDGE:
            return StepResult(done=True)
        expected = DEBATERS[len(self.said) % 2]
        if role != expected:
            raise ValueError(f"debate turn {len(self.said) + 1} belongs to {expected}, not {role}")
        argument = Argument(SIDE_OF[role], len(self.said) // 2 + 1, text)
        self.said.append(argument)
        if argument.side == "A":  # B answers in the same round
            if argument.round == 1:
                return StepResult(next=Observation(DEBATER_B, self.prompts.opening(self.task, "B", 1, self.rounds, argument)))
            return StepResult(next=Observation(DEBATER_B, self.prompts.reply(self.task, "B", argument.round, self.rounds, argument)))
        if argument.round < self.rounds:
            return StepResult(next=Observation(DEBATER_A, self.prompts.reply(self.task, "A", argument.round + 1, self.rounds, argument)))
        if self.judge_reads:
            return StepResult(next=Observation(JUDGE, self.prompts.judge(self.task, self.said)))
        return StepResult(done=True)


@dataclass
class DebateGroup:
    """The debates of one question (a GRPO group): every one is scored when all are done."""

    task: Any
    rounds: int
    prompts: DebatePrompts
    score: Callable[[Any, Sequence[Episode]], Sequence[float | None]]  # P(A is correct) per debate
    judge_reads: bool = True

    @property
    def roles(self) -> tuple[str, ...]:
        return DEBATERS + ((JUDGE,) if self.judge_reads else ())

    def make_envs(self, n: int) -> list[DebateEnv]:
        return [DebateEnv(self.task, self.rounds, self.prompts, self.judge_reads) for _ in range(n)]

    def group_rewards(self, episodes: Sequence[Episode]) -> list[dict[str, float]]:
        return [zero_sum(p) for p in self.score(self.task, episodes)]


def debate_limits(rounds: int, judge_reads: bool, max_tokens: int | None = None, timeout_s: float | None = None) -> EpisodeLimits:
    """Two turns a round, and the judge's: the runner's turn limit is the debate's length."""
    if rounds < 1:
        raise ConfigError(f"method.rounds must be >= 1, got {rounds}")
    return EpisodeLimits(2 * rounds + int(judge_reads), max_tokens, timeout_s)

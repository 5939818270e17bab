"""Guess a number in [low, high] with higher/lower feedback: the multi-turn learning demo.

A policy that guesses at random without repeats finds it within ``max_turns`` guesses with
probability max_turns / N; one that reads the feedback (binary search) always does when
max_turns >= log2(N) + 1. So success rate and turns per episode show whether multi-turn RL taught
the model to use what the environment told it. Reward: 1.0 when the number is found (the episode's
last turn), 0.0 otherwise; a reply with no number is told so and counts as a turn (``invalid``).
``format_bonus`` (group scoring) adds that much times the share of turns with a valid guess -- for a
model that must first learn to write a number at all (the tiny model); it never pays for more turns.

Demonstrations (``python -m tinkerx.envs.demonstrations env=guess_number``) play each training secret
by halving the range the feedback leaves, opening either in the middle (binary search: 15 numbers in 4
guesses) or at ``low`` (one guess spent on the end of the range: about half of them). ``demo_binary_share``
sets the share of games opened in the middle; a warm start trained mostly on the other opening reads the
feedback but opens badly, and multi-turn RL, rewarded for the win alone, has to find the better opening.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Sequence

from tinkerx.envs.one_turn import POLICY
from tinkerx.envs.protocol import Observation, StepResult
from tinkerx.envs.runner import EpisodeLimits
from tinkerx.errors import ConfigError

NUMBER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Secret:
    id: str
    secret: int


class GuessNumberEnv:
    def __init__(self, secret: int, low: int, high: int, prompt: str) -> None:
        self.secret, self.low, self.high, self.prompt = secret, low, high, prompt

    def initial_observation(self) -> Observation:
        return Observation(POLICY, [{"role": "user", "content": self.prompt.format(low=self.low, high=self.high)}])

    def step(self, role: str, text: str) -> StepResult:
        found = NUMBER.search(text)
        if found is None:
            return self._feedback(f"Reply with one number between {self.low} and {self.high}.", invalid=1.0)
        guess = int(found.group())
        if guess == self.secret:
            return StepResult(reward=1.0, done=True, metrics={"success": 1.0})
        return self._feedback("Higher." if guess < self.secret else "Lower.", out_of_range=float(not self.low <= guess <= self.high))

    def _feedback(self, text: str, **metrics: float) -> StepResult:
        return StepResult(next=Observation(POLICY, [{"role": "user", "content": text}]), metrics=metrics)


@dataclass
class GuessNumberGroup:
    task: Secret
    low: int
    high: int
    prompt: str
    format_bonus: float = 0.0
    roles: tuple[str, ...] = (POLICY,)

    def make_envs(self, n: int) -> list[GuessNumberEnv]:
        return [GuessNumberEnv(self.task.secret, self.low, self.high, self.prompt) for _ in range(n)]

    def group_rewards(self, episodes: Sequence[Any]) -> list[float]:
        if not self.format_bonus:
            return [0.0] * len(episodes)  # the reward is the last turn's
        return [self.format_bonus * (1.0 - e.metrics.get("invalid", 0.0) / len(e.turns)) if e.turns else 0.0 for e in episodes]


class GuessNumber:
    """``env=guess_number``: secrets drawn with ``seed``; train and test secrets are separate draws."""

    def __init__(self, low: int = 1, high: int = 10, train_size: int = 200, test_size: int = 50, seed: int = 0,
                 prompt: str = "I am thinking of a number between {low} and {high}. Guess it: reply with one number.",
                 format_bonus: float = 0.0, demo_binary_share: float = 1.0,
                 max_turns: int = 4, max_tokens: int | None = None, timeout_s: float | None = None) -> None:  # fmt: skip
        if high <= low:
            raise ConfigError(f"env.high must be above env.low, got low={low} high={high}")
        if train_size < 1 or test_size < 0:
            raise ConfigError(f"env.train_size must be >= 1 and env.test_size >= 0, got {train_size} and {test_size}")
        if format_bonus < 0:
            raise ConfigError(f"env.format_bonus must be >= 0, got {format_bonus}")
        if not 0.0 <= demo_binary_share <= 1.0:
            raise ConfigError(f"env.demo_binary_share must be in [0, 1], got {demo_binary_share}")
        self.low, self.high, self.prompt, self.format_bonus = low, high, prompt, format_bonus
        self.limits = EpisodeLimits(max_turns, max_tokens, timeout_s)
        rng = random.Random(seed)
        self.train = [Secret(f"train-{i}", rng.randint(low, high)) for i in range(train_size)]
        self.test = [Secret(f"test-{i}", rng.randint(low, high)) for i in range(test_size)]
        # Its own stream, so the share never changes which secrets are drawn.
        players = random.Random(f"guess_number-demonstrations-{seed}")
        self._binary_demos = {t.id for t in self.train if players.random() < demo_binary_share}

    def group(self, task: Secret) -> GuessNumberGroup:
        return GuessNumberGroup(task, self.low, self.high, self.prompt, self.format_bonus)

    def demonstration(self, task: Secret) -> list[dict[str, str]]:
        """The game on ``task`` as chat messages: each guess halves what the feedback left, the first
        in the middle or at ``low`` (which: ``demo_binary_share``), the environment's replies between."""
        env = GuessNumberEnv(task.secret, self.low, self.high, self.prompt)
        messages = list(env.initial_observation().messages)
        low, high = self.low, self.high
        for turn in range(self.limits.max_turns):
            guess = self.low if turn == 0 and task.id not in self._binary_demos else (low + high + 1) // 2
            messages.append({"role": "assistant", "content": str(guess)})
            result = env.step(POLICY, str(guess))
            if result.done:
                break
            messages += result.next.messages
            low, high = (guess + 1, high) if result.next.messages[0]["content"] == "Higher." else (low, guess - 1)
        return messages

"""A data set's prompt as a one-turn environment: the policy answers once, the episode is done.

Its reward is not the environment's: the run's reward (``reward=``) scores the reply against the
example's answer, all replies of a step in one batch (tinkerx/methods/shared/rollouts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from tinkerx.envs.protocol import Observation, StepResult

POLICY = "policy"


class OneTurnEnv:
    def __init__(self, messages: Sequence[dict[str, str]]) -> None:
        self.messages = list(messages)

    def initial_observation(self) -> Observation:
        return Observation(POLICY, self.messages)

    def step(self, role: str, text: str) -> StepResult:
        return StepResult(done=True)


@dataclass
class OneTurnGroup:
    task: Any                          # the data set example
    messages: Sequence[dict[str, str]]
    roles: tuple[str, ...] = (POLICY,)
    scored_by_reward = True            # the run's reward scores the replies (not the environment)

    def make_envs(self, n: int) -> list[OneTurnEnv]:
        return [OneTurnEnv(self.messages) for _ in range(n)]

    def group_rewards(self, episodes: Sequence[Any]) -> list[float]:
        return [0.0] * len(episodes)

"""What an environment implements: small and synchronous (after tinker-cookbook's Env/EnvGroupBuilder).

An episode is a conversation per role. ``initial_observation`` names the role that acts first and the
messages it sees; each ``step`` receives what that role wrote and answers with a reward for the turn
and, unless the episode is done, the next ``Observation``: the role that acts next and the *new*
messages appended to that role's own conversation (a tool result, the game's feedback, the other
debater's argument). The runner -- not the environment -- samples, tokenizes, and enforces turn,
token and time limits; an environment never sees tokens.

Rewards: ``StepResult.reward`` is a turn's reward (per-turn credit); an episode's reward is the sum
of its turns' rewards plus what ``EnvGroup.group_rewards`` adds once all episodes of one task are
done (group-level scoring: a pairwise judge, a rank). Most environments use one of the two: reward
only the final step, or only the group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

Messages = list[dict[str, str]]


@dataclass
class Observation:
    role: str                 # who acts next
    messages: Messages        # appended to that role's conversation before it acts (may be empty)


@dataclass
class StepResult:
    reward: float = 0.0
    done: bool = False
    next: Observation | None = None   # required unless done
    metrics: dict[str, float] = field(default_factory=dict)  # summed per step into episode metrics


class Env(Protocol):
    """One episode's environment. Built fresh per episode by its ``EnvGroup``."""

    def initial_observation(self) -> Observation: ...

    def step(self, role: str, text: str) -> StepResult: ...


class EnvGroup(Protocol):
    """The environments of one task (a GRPO group) and their group-level scoring."""

    task: Any            # what the episodes are about (a data set example, a secret number, ...)
    roles: Sequence[str]  # every role an episode may ask to act

    def make_envs(self, n: int) -> list[Env]: ...

    def group_rewards(self, episodes: Sequence[Any]) -> list[float] | list[dict[str, float]]:
        """Added to each episode's summed turn rewards; zeros when an environment rewards per turn.
        Episodes of several trained roles (a debate) give one reward per role: ``{role: reward}``."""
        ...


class EnvSpec(Protocol):
    """What ``conf/env/*.yaml`` builds (``env=NAME``): the tasks of each split, the group of
    environments for a task, and the runner's limits for its episodes."""

    limits: Any                 # tinkerx.envs.runner.EpisodeLimits
    train: Sequence[Any]        # tasks GRPO draws groups from
    test: Sequence[Any]         # held-out tasks: one episode each for evaluation

    def group(self, task: Any) -> EnvGroup: ...

"""What an episode records: every policy turn's exact tokens, the outcome, the rewards.

``Turn.prompt_T`` is exactly what the policy was given and ``tokens_T`` / ``logprobs_T`` exactly what
it sampled, so training data are built from these tokens (``trained_tokens``) and never from a
re-tokenized transcript.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

# How an episode ended. Everything but "done" was cut by the runner or the environment failed; each
# is counted in the metrics (episodes/<outcome>) and the episode is still scored and recorded.
OUTCOMES = ("done", "max_turns", "token_budget", "timeout", "env_error")


@dataclass
class Turn:
    role: str
    prompt_T: list[int]
    tokens_T: list[int]
    logprobs_T: list[float]
    stop_reason: str
    text: str
    reward: float = 0.0
    observation: list[dict[str, str]] = field(default_factory=list)  # what the environment answered


@dataclass
class Episode:
    task: Any
    turns: list[Turn] = field(default_factory=list)
    outcome: str = "done"
    error: str | None = None
    group_reward: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    opening: list[dict[str, str]] = field(default_factory=list)  # the first observation's messages
    # Group scoring per role, for episodes of several trained roles (a debate's zero-sum rewards):
    # replaces ``group_reward`` for the roles it names.
    role_rewards: dict[str, float] = field(default_factory=dict)

    @property
    def reward(self) -> float:
        return sum(t.reward for t in self.turns) + self.group_reward

    def reward_of(self, role: str) -> float:
        """``role``'s reward: its own turns' rewards plus its group reward (the episode's when none is its own)."""
        return sum(t.reward for t in self.role_turns(role)) + self.role_rewards.get(role, self.group_reward)

    def role_turns(self, role: str) -> list[Turn]:
        return [t for t in self.turns if t.role == role]


@dataclass
class TrainedTokens:
    """One role's whole context as a single sequence: its first prompt, then everything after it
    with a mask of 1 on the tokens the policy sampled (0 on environment, tool and template tokens)."""

    prompt_T: list[int]
    tokens_T: list[int]
    logprobs_T: list[float]  # the sampler's logprob on sampled tokens, 0.0 elsewhere
    mask_T: list[float]


def metric_means(episodes: Sequence[Episode]) -> dict[str, float]:
    """The mean over ``episodes`` of each metric an environment reported (0 where one did not)."""
    n = max(len(episodes), 1)
    return {key: sum(e.metrics.get(key, 0.0) for e in episodes) / n for key in sorted({k for e in episodes for k in e.metrics})}


def trained_tokens(episode: Episode, role: str) -> TrainedTokens | None:
    """``role``'s turns as one sequence; None when it never acted.

    Only ``role``'s own sampled tokens carry mask 1: in an episode of several roles (a debate) every
    other role's words reach it as new messages, i.e. glue between its turns, masked out.

    Each turn's prompt extends the previous turn's prompt + sampled tokens (the runner builds it so),
    which is checked here: a mismatch would train on tokens the policy never saw.
    """
    turns = episode.role_turns(role)
    if not turns:
        return None
    first = turns[0].prompt_T
    tokens: list[int] = []
    logprobs: list[float] = []
    mask: list[float] = []
    for turn in turns:
        seen = len(first) + len(tokens)
        if turn.prompt_T[: len(first)] != first or turn.prompt_T[len(first) : seen] != tokens:
            raise ValueError(f"turn prompt of role {role!r} does not extend its previous turn: the runner must build prompts incrementally")
        glue = turn.prompt_T[seen:]
        tokens += glue + turn.tokens_T
        logprobs += [0.0] * len(glue) + list(turn.logprobs_T)
        mask += [0.0] * len(glue) + [1.0] * len(turn.tokens_T)
    return TrainedTokens(list(first), tokens, logprobs, mask)

"""Per-step RL metrics from a batch of groups. Wall-clock figures are kept apart, under ``time/``."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

from tinkerx.envs.episode import OUTCOMES, metric_means
from tinkerx.methods.shared.advantages import ALL_0, ALL_1, SIGNAL
from tinkerx.methods.shared.rollouts import Group, Sample


def rollout_metrics(groups: Sequence[Group]) -> dict[str, float]:
    samples = [s for g in groups for s in g.samples]
    rewards = [s.reward for s in samples]
    n = max(len(samples), 1)  # every episode of the batch may have failed before its first turn
    mean = sum(rewards) / n
    kinds = Counter(g.kind for g in groups)
    return {
        "reward/mean": mean,
        "reward/std": math.sqrt(sum((r - mean) ** 2 for r in rewards) / n),
        "reward/accuracy": sum(r >= 0.5 for r in rewards) / n,  # the evaluator's threshold
        "groups/signal": kinds[SIGNAL],
        "groups/no_signal": len(groups) - kinds[SIGNAL],
        "groups/all_0": kinds[ALL_0],
        "groups/all_1": kinds[ALL_1],
        "sample/completion_tokens": sum(s.policy_tokens for s in samples) / n,
        "sample/truncation_rate": sum(s.stop_reason == "length" for s in samples) / n,
        "sample/tokens": sum(len(g.prompt_T) + len(s.tokens_T) for g in groups for s in g.samples),
    }


def episode_metrics(groups: Sequence[Group]) -> dict[str, float]:
    """An environment's episodes: turns per episode, how many the runner cut or the environment
    failed (``episodes/<outcome>``), and the mean of each metric the environment reported (``env/...``).
    Empty for one-turn data set groups, whose metrics stay exactly what they were."""
    episodes = [e for g in groups if g.env_group is not None for e in g.episodes]
    if not episodes:
        return {}
    n = len(episodes)
    metrics = {"episodes/turns": sum(len(e.turns) for e in episodes) / n, "episodes/count": n}
    metrics.update({f"episodes/{o}": sum(e.outcome == o for e in episodes) for o in OUTCOMES if o != "done"})
    metrics.update({f"env/{key}": value for key, value in metric_means(episodes).items()})
    return metrics


def sampler_trainer_kl(trained: Sequence[tuple[Group, Sample]], trainer_logprobs: Sequence[Any]) -> float:
    """Mean of (sampler logprob - trainer logprob) over the completion tokens trained on.

    An estimate of KL(sampler || trainer): ~0 when sampling and training see the same weights and
    numerics; growing values mean off-policy data, which the importance ratio then corrects.
    """
    total, count = 0.0, 0
    for (group, sample), logprobs in zip(trained, trainer_logprobs):
        trainer_T = logprobs.tolist()[len(group.prompt_T) - 1 :]
        mask_T = sample.mask_T or [1.0] * len(sample.logprobs_T)  # only the tokens the policy sampled
        total += sum(s - t for s, t, m in zip(sample.logprobs_T, trainer_T, mask_T) if m)
        count += sample.policy_tokens
    return total / count if count else 0.0

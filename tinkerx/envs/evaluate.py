"""Held-out evaluation of a policy on an environment: one episode per test task."""

from __future__ import annotations

from typing import Any

from tinkerx.envs.episode import OUTCOMES, Episode, metric_means
from tinkerx.envs.records import episode_record
from tinkerx.envs.runner import EpisodeRunner


def evaluate_env(spec: Any, policies: dict[str, Any], tokenizer: Any, params: Any, episodes_per_task: int = 1) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(metrics, one record per episode) over every test task. ``success_rate``: episodes with
    reward >= 0.5, the evaluator's threshold; ``turns_mean``: policy turns per episode; ``env_<name>``:
    the mean of each metric the environment reported (``env_tool_errors``: failed tool calls an episode)."""
    runner = EpisodeRunner(tokenizer, params, spec.limits)
    groups = runner.launch([spec.group(t) for t in spec.test], episodes_per_task, policies).collect()
    episodes: list[Episode] = [e for g in groups for e in g]
    n = max(len(episodes), 1)
    metrics = {
        "success_rate": sum(e.reward >= 0.5 for e in episodes) / n,
        "reward_mean": sum(e.reward for e in episodes) / n,
        "turns_mean": sum(len(e.turns) for e in episodes) / n,
        "num_episodes": float(len(episodes)),
        **{f"outcome_{o}": float(sum(e.outcome == o for e in episodes)) for o in OUTCOMES if o != "done"},
        **{f"env_{key}": value for key, value in metric_means(episodes).items()},
    }
    return metrics, [episode_record(e) for e in episodes]

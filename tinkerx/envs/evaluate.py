"""Held-out evaluation of a policy on an environment: one episode per test task."""

from __future__ import annotations

from typing import Any

from tinkerx.envs.episode import OUTCOMES, Episode
from tinkerx.envs.records import episode_record
from tinkerx.envs.runner import EpisodeRunner


def evaluate_env(spec: Any, policies: dict[str, Any], tokenizer: Any, params: Any, max_episodes: int | None = None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(metrics, one record per episode). ``success_rate``: episodes with reward >= 0.5, the
    evaluator's threshold; ``turns_mean``: policy turns per episode."""
    tasks = list(spec.test)[:max_episodes] if max_episodes is not None else list(spec.test)
    runner = EpisodeRunner(tokenizer, params, spec.limits)
    episodes: list[Episode] = [g[0] for g in runner.launch([spec.group(t) for t in tasks], 1, policies).collect()]
    n = max(len(episodes), 1)
    metrics = {
        "success_rate": sum(e.reward >= 0.5 for e in episodes) / n,
        "reward_mean": sum(e.reward for e in episodes) / n,
        "turns_mean": sum(len(e.turns) for e in episodes) / n,
        "num_episodes": float(len(episodes)),
        **{f"outcome_{o}": float(sum(e.outcome == o for e in episodes)) for o in OUTCOMES if o != "done"},
    }
    return metrics, [episode_record(e) for e in episodes]

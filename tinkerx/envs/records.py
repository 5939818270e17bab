"""Episodes as run-folder records a person can read: turn by turn, roles, text, token counts, rewards."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from tinkerx.envs.episode import Episode


def episode_record(episode: Episode, **extra: Any) -> dict[str, Any]:
    task = asdict(episode.task) if is_dataclass(episode.task) else getattr(episode.task, "id", str(episode.task))
    return {
        **extra,
        "task": task,
        "outcome": episode.outcome,
        **({"error": episode.error} if episode.error else {}),
        "reward": episode.reward,
        "group_reward": episode.group_reward,
        **({"role_rewards": episode.role_rewards} if episode.role_rewards else {}),
        "metrics": episode.metrics,
        "opening": episode.opening,
        "turns": [
            {"role": t.role, "text": t.text, "prompt_tokens": len(t.prompt_T), "tokens": len(t.tokens_T), "stop_reason": t.stop_reason,
             "reward": t.reward, "observation": t.observation}
            for t in episode.turns
        ],  # fmt: skip
    }

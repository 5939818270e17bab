"""Group-relative advantages (GRPO): each sample's reward against its own group's mean."""

from __future__ import annotations

import math
from typing import Sequence

# How a group with no spread in reward is counted. Such a group has zero advantage everywhere,
# so it carries no learning signal and is skipped; ALL-0 means the prompt is too hard for now,
# ALL-1 that it is already solved.
SIGNAL, ALL_0, ALL_1, FLAT = "signal", "all_0", "all_1", "flat"


def group_kind(rewards_G: Sequence[float]) -> str:
    if max(rewards_G) > min(rewards_G):
        return SIGNAL
    value = rewards_G[0]
    return ALL_0 if value <= 0.0 else ALL_1 if value >= 1.0 else FLAT


def group_advantages(rewards_G: Sequence[float], normalize_std: bool = False, eps: float = 1e-6) -> list[float]:
    """``reward - mean(group)``, divided by the group's std when ``normalize_std``."""
    mean = sum(rewards_G) / len(rewards_G)
    advantages_G = [r - mean for r in rewards_G]
    if normalize_std:
        std = math.sqrt(sum(a * a for a in advantages_G) / len(advantages_G))
        advantages_G = [a / (std + eps) for a in advantages_G]
    return advantages_G


def overlong_penalty(length: int, max_tokens: int, buffer_fraction: float) -> float:
    """DAPO's soft overlong punishment: 0 up to the buffer, then a linear ramp to -1 at max_tokens.

    The buffer is the last ``buffer_fraction`` of ``max_tokens``: a completion that had to be cut
    is penalised fully, one that came close is penalised a little, so length is learned gradually.
    """
    buffer = max(1, round(buffer_fraction * max_tokens))
    free = max_tokens - buffer
    if length <= free:
        return 0.0
    return max(-1.0, (free - length) / buffer)

"""Whether a reward can grade a ground truth at all, asked before grading.

A reward that can tell (``gradable(ground_truth) -> bool``) lets evaluation count the answers it
cannot grade, a numeric reward on MATH's "p - q" say, instead of scoring them 0 unannounced. A
reward without the method is taken to grade everything. Wrappers that keep the reward they wrap
as ``.reward`` (``GuardedReward``) are looked through.
"""

from __future__ import annotations

from typing import Any


def can_grade(reward: Any, ground_truth: str) -> bool:
    inner = getattr(reward, "reward", reward)
    gradable = getattr(inner, "gradable", None)
    return True if gradable is None else bool(gradable(ground_truth))

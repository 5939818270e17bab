"""DAPO's dynamic sampling: keep drawing prompts until the batch has enough groups with signal.

A group whose samples all score the same has zero advantage and teaches nothing; as training
progresses more prompts become ALL-0 or ALL-1 and the effective batch shrinks. Drawing more (with
a cap, so a step cannot run away) keeps the number of groups trained on constant.
"""

from __future__ import annotations

from typing import Callable

from tinkerx.methods.shared.advantages import SIGNAL
from tinkerx.methods.shared.rollouts import Group


def draw_with_signal(draw: Callable[[int], list[Group]], wanted: int, max_rounds: int) -> tuple[list[Group], int]:
    """``draw(wanted)`` groups, then draws of the missing count until ``wanted`` have signal.

    Returns every group drawn (for metrics) and the number of extra draws, at most ``max_rounds``.
    The groups to train on are the first ``wanted`` with signal: ``signal_groups(groups, wanted)``.
    """
    groups = draw(wanted)
    rounds = 0
    while rounds < max_rounds:
        missing = wanted - sum(g.kind == SIGNAL for g in groups)
        if missing <= 0:
            break
        groups += draw(missing)
        rounds += 1
    return groups, rounds


def signal_groups(groups: list[Group], wanted: int) -> list[Group]:
    return [g for g in groups if g.kind == SIGNAL][:wanted]

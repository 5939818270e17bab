"""Rewards that can never stop a run: timeouts, error counting, and a start-up check.

Each call runs the inner reward on a daemon thread and waits at most ``timeout_s``. A daemon
thread rather than an executor worker, because executor workers are joined at interpreter exit:
one reward stuck in an endless loop would then hang the process after training finished. A
thread that times out cannot be killed and keeps running in the background until it returns.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from tinkerx.errors import UserError
from tinkerx.example import Example

log = logging.getLogger(__name__)


class Reward(Protocol):
    name: str

    def compute_reward(self, completion: str, ground_truth: str) -> float: ...


@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False


def call_with_timeout(fn: Callable[..., Any], args: tuple, timeout_s: float) -> _Outcome:
    outcome = _Outcome()

    def target() -> None:
        try:
            outcome.value = fn(*args)
        except BaseException as e:  # a user's sys.exit() must not escape either
            outcome.error = e

    thread = threading.Thread(target=target, name="tinkerx-reward", daemon=True)
    thread.start()
    thread.join(timeout_s)
    outcome.timed_out = thread.is_alive()
    return outcome


def describe_error(error: BaseException) -> str:
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _score(value: Any) -> float:
    """``value`` as a finite float; TypeError/ValueError otherwise (bools and ints are fine)."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"compute_reward returned {type(value).__name__} {str(value)[:40]!r}, expected a float")
    score = float(value)
    if not math.isfinite(score):
        raise ValueError(f"compute_reward returned {score}")
    return score


def reward_metrics(reward: Any) -> dict[str, float]:
    """What a reward counts of its own so far (a code reward's ``code/<outcome>`` counts), looked up
    through ``GuardedReward``: any reward with a ``metrics()`` method reports, the others give {}.
    For a trainer's per-step metrics beside ``reward/errors``."""
    inner = getattr(reward, "reward", reward)
    metrics = getattr(inner, "metrics", None)
    return metrics() if callable(metrics) else {}


class GuardedReward:
    """Wraps a reward so an exception or a timeout scores 0.0, is counted, and never raises.

    ``errors`` and ``timeouts`` only grow; a trainer reports the change over each step.
    ``last_error`` keeps the most recent failure as one line.
    """

    def __init__(self, reward: Reward, timeout_s: float = 5.0, max_workers: int = 8) -> None:
        self.reward = reward
        self.name = reward.name
        self.timeout_s = timeout_s
        # Bounds score_batch's concurrency: most rewards hold the GIL, so running hundreds at
        # once would not finish sooner but would push every call past its timeout.
        self.max_workers = max_workers
        self.errors = 0
        self.timeouts = 0
        self.last_error: str | None = None
        # What ``checked`` found when it tried the reward before the run (shown by the MCP server).
        self.reference_check: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def compute_reward(self, completion: str, ground_truth: str) -> float:
        outcome = call_with_timeout(self.reward.compute_reward, (completion, ground_truth), self.timeout_s)
        if outcome.timed_out:
            self._record("timeouts", f"timed out after {self.timeout_s:g}s")
            return 0.0
        if outcome.error is not None:
            self._record("errors", describe_error(outcome.error))
            return 0.0
        try:
            return _score(outcome.value)
        except (TypeError, ValueError) as e:
            self._record("errors", str(e))
            return 0.0

    def score_batch(self, completions: Sequence[str], ground_truths: Sequence[str], questions: Sequence[str] | None = None) -> list[float]:
        """Scores pairs concurrently, in order; each pair gets its own ``timeout_s``. A reward that
        scores a batch itself (``score_batch``, e.g. an LLM judge) gets the whole batch, and the
        ``questions`` asked, in one call under one ``timeout_s``."""
        if len(completions) != len(ground_truths):
            raise ValueError(f"{len(completions)} completions but {len(ground_truths)} ground truths")
        if not completions:
            return []
        if callable(getattr(self.reward, "score_batch", None)):
            return self._whole_batch(list(completions), list(ground_truths), questions)
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(completions))) as pool:
            return list(pool.map(self.compute_reward, completions, ground_truths))

    def _whole_batch(self, completions: list[str], ground_truths: list[str], questions: Sequence[str] | None) -> list[float]:
        outcome = call_with_timeout(self.reward.score_batch, (completions, ground_truths, questions), self.timeout_s)
        failure = f"timed out after {self.timeout_s:g}s" if outcome.timed_out else describe_error(outcome.error) if outcome.error else None
        if failure is None and (not isinstance(outcome.value, Sequence) or len(outcome.value) != len(completions)):
            failure = f"score_batch returned {str(outcome.value)[:40]!r}, expected {len(completions)} scores"
        if failure is not None:
            for _ in completions:
                self._record("timeouts" if outcome.timed_out else "errors", failure)
            return [0.0] * len(completions)
        scores = []
        for value in outcome.value:
            try:
                scores.append(_score(value))
            except (TypeError, ValueError) as e:
                self._record("errors", str(e))
                scores.append(0.0)
        return scores

    def _record(self, counter: str, message: str) -> None:
        with self._lock:
            first = self.errors + self.timeouts == 0
            setattr(self, counter, getattr(self, counter) + 1)
            self.last_error = message
        # Warn once; the per-step counts in the metrics carry the rest.
        (log.warning if first else log.debug)("reward %s scored 0.0: %s", self.name, message)


def validate_reward(
    reward: Reward,
    examples: Sequence[Example],
    completions: Sequence[str] | None = None,
    limit: int = 4,
    timeout_s: float = 30.0,
) -> list[float]:
    """Run ``reward`` on up to ``limit`` examples before any training; UserError if it cannot run.

    Without ``completions`` each example's own ``solution`` (or ``answer``) stands in for a model
    output. Fails when every call raises, when any call times out or returns a non-number.
    Returns the scores of the calls that succeeded.
    """
    examples = list(examples)[:limit]
    completions_are_references = completions is None
    if completions is None:
        completions = [e.solution or e.answer for e in examples]
    name = getattr(reward, "name", type(reward).__name__)
    scores: list[float] = []
    failures: list[str] = []
    for example, completion in zip(examples, completions):
        outcome = call_with_timeout(reward.compute_reward, (completion, example.answer), timeout_s)
        if outcome.timed_out:
            # One hang is enough to know: each further example would cost another ``timeout_s``.
            raise UserError(f"reward {name!r} timed out after {timeout_s:g}s on a reference solution: does "
                            "compute_reward wait on something or loop forever? (raise reward_timeout_s if it is only slow)")
        if outcome.error is not None:
            failures.append(describe_error(outcome.error))
        else:
            try:
                scores.append(_score(outcome.value))
            except (TypeError, ValueError) as e:
                raise UserError(f"reward {name!r} is broken: {e}") from None
    if failures and not scores:
        raise UserError(f"reward {name!r} failed on all {len(failures)} validation examples: {failures[0]}")
    if scores and not any(scores) and completions_are_references:
        # Not fatal (a reward may grade reference solutions strictly), but usually the wrong
        # reward for the data set, e.g. numeric on MATH's LaTeX answers.
        log.warning("reward %s scored 0 on all %d reference solutions; is it the right reward for this data set?",
                    name, len(scores))
    return scores


def checked(reward: Reward, examples: Sequence[Example], timeout_s: float) -> GuardedReward:
    """``reward`` tried on a few examples' reference solutions (``validate_reward``), then guarded;
    the check's scores stay on the result as ``reference_check``."""
    examples = list(examples)[:4]
    scores = validate_reward(reward, examples, timeout_s=timeout_s)
    reward_metrics(reward)  # what the check counted (a code reward's executions) is not the first step's
    guarded = GuardedReward(reward, timeout_s=timeout_s)
    guarded.reference_check = {"reward": guarded.name, "reference_answers": [e.solution or e.answer for e in examples], "scores": scores}
    return guarded

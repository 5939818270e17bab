"""A judge's verdict read from its next-token probabilities of the labels it may answer with.

Shared by every judge in tinkerx (the debate judge, rubric judges): a prompt ending where the
judge names its label ("Winner:", "Verdict:") is scored once per label, and the labels' total
logprobs are renormalised over the labels alone, so the judge always decides and nothing is parsed.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from tinkerx.sampler import compute_logprobs_all


def label_probability(logprob_first: float, logprob_second: float) -> float:
    """P(first label) with the probability renormalised over the two labels (a softmax of two)."""
    return 1.0 / (1.0 + math.exp(min(700.0, logprob_second - logprob_first)))


def label_distribution(logprobs: Sequence[float]) -> list[float]:
    """The labels' probabilities renormalised over the labels (a softmax of their total logprobs)."""
    top = max(logprobs)
    weights = [math.exp(x - top) for x in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


def combine_orders(p_a_as_written: float, p_first_swapped: float) -> float:
    """P(answer A is preferred), position bias removed: the mean of both orders' beliefs in answer A.

    In the swapped order answer A is shown second, so the judge's belief in it is 1 - P(first label).
    A judge that always prefers whichever answer comes first ends at exactly 0.5 from that bias alone.
    """
    return 0.5 * (p_a_as_written + (1.0 - p_first_swapped))


def can_score_labels(client: Any) -> bool:
    """Whether a sampling client gives prompt logprobs (the local backend and Tinker do; a chat endpoint does not)."""
    return callable(getattr(client, "compute_logprobs", None)) or callable(getattr(client, "compute_logprobs_many", None))


def request_label_logprobs(client: Any, prompts: Sequence[Sequence[int]], labels: Sequence[Sequence[int]]) -> Callable[[], list[list[float]]]:
    """Sends every (prompt, label) request as one batch; the returned call waits for each prompt's
    labels' total logprobs.

    The requests of one prompt share all but their last tokens, so a client that batches them
    (``compute_logprobs_many``) reads every single-token label from one forward.
    """
    futures = compute_logprobs_all(client, [list(prompt) + list(label) for prompt in prompts for label in labels])

    def collect() -> list[list[float]]:
        totals = []
        for i in range(len(prompts)):
            group = futures[i * len(labels) : (i + 1) * len(labels)]
            # A label may span tokens: its logprob is the sum of its tokens' logprobs after the prompt.
            totals.append([sum(float(x) for x in f.result()[-len(label):]) for f, label in zip(group, labels)])
        return totals

    return collect

"""Tagging records against a taxonomy with a judge model's label probabilities.

For each record the judge is asked which of the taxonomy's tags fits it; the tag's probability is
the judge's probability of writing that tag as its reply (the summed logprobs of the tag's tokens
after the prompt), renormalised over the taxonomy (a softmax of the tags' logprobs). The record
gets the most probable tag, or, with ``multi``, every tag at least that probable; and the
probabilities themselves, so a user can see how sure the judge was.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from tinkerx.chat import prompt_tokens
from tinkerx.errors import UserError
from tinkerx.sampler import compute_logprobs_all

QUESTION = "Which one of these tags fits the item below best? Tags: {tags}.\n\nItem:\n{text}\n\nReply with the tag only."


def check_taxonomy(tags: Sequence[Any]) -> list[str]:
    """The taxonomy as distinct non-empty strings; a one-line UserError otherwise."""
    names = [str(t).strip() for t in tags]
    if len(names) < 2 or any(not n for n in names) or len(set(names)) != len(names):
        raise UserError(f"the taxonomy must list at least two distinct, non-empty tags, got {list(tags)!r}")
    return names


def softmax(logprobs: Sequence[float]) -> list[float]:
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    return [w / sum(weights) for w in weights]


def tag_probabilities(sampling_client: Any, tokenizer: Any, texts: Sequence[str], taxonomy: Sequence[str], question: str = QUESTION) -> list[dict[str, float]]:
    """Per text, P(tag) over the taxonomy; every request in flight at once."""
    if not callable(getattr(sampling_client, "compute_logprobs", None)):
        raise UserError("tagging reads the judge's label probabilities, which this backend does not give (an endpoint: "
                        "backend=openai); judge with backend=local or backend=tinker")  # fmt: skip
    labels = [tokenizer.encode(tag, add_special_tokens=False) for tag in taxonomy]
    prompts = [prompt_tokens(tokenizer, [{"role": "user", "content": question.format(tags=", ".join(taxonomy), text=t)}]) for t in texts]
    futures = compute_logprobs_all(sampling_client, [p + label for p in prompts for label in labels])
    results = []
    for i in range(len(prompts)):
        row = futures[i * len(labels) : (i + 1) * len(labels)]
        totals = [sum(float(x) for x in f.result()[-len(label):]) for f, label in zip(row, labels)]
        results.append(dict(zip(taxonomy, softmax(totals))))
    return results


def tagged(record: dict[str, Any], probabilities: dict[str, float], field: str, multi: float | None) -> dict[str, Any]:
    """The record with its tag (``field``) and the judge's probabilities (``field_probabilities``)."""
    best = max(probabilities, key=probabilities.get)
    value: Any = best if multi is None else [t for t, p in probabilities.items() if p >= multi] or [best]
    return {**record, field: value, f"{field}_probabilities": {t: round(p, 6) for t, p in probabilities.items()}}

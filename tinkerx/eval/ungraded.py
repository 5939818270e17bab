"""Evaluation without a reward: the sampled replies themselves, and the NLL of held-out conversations.

Chat data has no ground truth to grade; what people compare runs by is the held-out NLL (perplexity)
and what the model says. Every record keeps the prompt, the reference reply and the sampled one, so
``eval/baseline.jsonl`` and ``eval/final.jsonl`` in the run folder show the replies before and after.
"""

from __future__ import annotations

from typing import Any, Sequence

from tinkerx.eval.conversation_nll import conversation_nll


def ungraded_result(sampling_client: Any, tokenizer: Any, dataset: Any, examples: Sequence[Any], futures: Sequence[Any],
                    scored: Sequence[Any]) -> tuple[dict[str, float], list[dict[str, Any]]]:  # fmt: skip
    """``(metrics, records)`` of the sampled replies (``futures``, one per example), and the NLL of the
    ``scored`` conversations: the whole held-out split, since scoring is one forward each, far cheaper than sampling."""
    records = []
    for ex, future in zip(examples, futures):
        for index, sample in enumerate(future.result()):
            records.append({"id": ex.id, "sample": index, "prompt": dataset.messages(ex), "reference": dataset.completion(ex),
                            "completion": sample.text if sample.error is None else "", "num_tokens": sample.num_tokens,
                            "truncated": sample.stop_reason == "length", **({"error": sample.error} if sample.error else {})})  # fmt: skip
    ok = [r for r in records if not r.get("error")]
    n = max(1, len(ok))
    metrics = {"mean_completion_tokens": sum(r["num_tokens"] for r in ok) / n, "truncation_rate": sum(r["truncated"] for r in ok) / n,
               "num_examples": float(len(ok))}  # fmt: skip
    if len(ok) < len(records):
        metrics["num_errors"] = float(len(records) - len(ok))
    if hasattr(dataset, "conversation"):
        metrics.update(conversation_nll(sampling_client, tokenizer, dataset, scored))
    return metrics, records

"""Preference pairs as training data: tokens, datums, reference logprobs, and pairs made by sampling.

A pair is trained as two datums, chosen then rejected, each a prompt + reply with ``weights`` 1 on
the reply's tokens: the layout ``dpo_loss_fn`` reads. The reference logprobs are computed once per
pair (one ``compute_logprobs`` forward of a frozen model, no sampling) and cached with the pairs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tinkerx.chat import completion_tokens, prompt_tokens, supervised_datum
from tinkerx.data.jsonl import check_jsonl
from tinkerx.data.preference import PreferencePair
from tinkerx.methods.shared.rollouts import sample_groups, score_groups


@dataclass
class TokenizedPair:
    pair: PreferencePair
    prompt_T: list[int]
    chosen_T: list[int]
    rejected_T: list[int]
    ref_chosen: float = 0.0  # the reference model's logprob of the whole reply
    ref_rejected: float = 0.0

    def datums(self) -> list[Any]:
        return [supervised_datum(self.prompt_T, self.chosen_T), supervised_datum(self.prompt_T, self.rejected_T)]

    def row(self, split: str) -> dict[str, Any]:
        return {**self.pair.row(), "split": split, "ref_chosen": self.ref_chosen, "ref_rejected": self.ref_rejected}


def tokenize_pairs(tokenizer: Any, dataset: Any, pairs: Sequence[PreferencePair]) -> list[TokenizedPair]:
    return [
        TokenizedPair(p, prompt_tokens(tokenizer, dataset.messages(p.example)), completion_tokens(tokenizer, p.chosen), completion_tokens(tokenizer, p.rejected))
        for p in pairs
    ]


def add_reference_logprobs(reference: Any, pairs: Sequence[TokenizedPair]) -> None:
    """Sets every pair's reference logprobs; all requests in flight before any wait."""
    from tinker import types

    futures = [
        (reference.compute_logprobs(types.ModelInput.from_ints(p.prompt_T + p.chosen_T)),
         reference.compute_logprobs(types.ModelInput.from_ints(p.prompt_T + p.rejected_T)))  # fmt: skip
        for p in pairs
    ]
    for p, (chosen, rejected) in zip(pairs, futures):
        p.ref_chosen = sum(chosen.result()[len(p.prompt_T) :])
        p.ref_rejected = sum(rejected.result()[len(p.prompt_T) :])


def sample_pairs(sampling_client: Any, tokenizer: Any, dataset: Any, examples: Sequence[Any], num_samples: int, params: Any,
                 reward: Any, pairs_per_prompt: int) -> list[PreferencePair]:  # fmt: skip
    """Pairs from a verifiable data set: sample each prompt ``num_samples`` times, pair correct with incorrect.

    A prompt whose samples are all correct or all incorrect gives no pair; one with both gives up to
    ``pairs_per_prompt`` pairs, each reply used once.
    """
    groups = sample_groups(sampling_client, tokenizer, dataset, examples, num_samples, params)
    score_groups(groups, reward)
    pairs = []
    for g in groups:
        correct = [s.text for s in g.samples if s.reward >= 0.5]  # the evaluator's threshold
        wrong = [s.text for s in g.samples if s.reward < 0.5]
        pairs += [PreferencePair(g.example, c, r) for c, r in list(zip(correct, wrong))[:pairs_per_prompt]]
    return pairs


def read_pair_cache(path: Path, tokenizer: Any, dataset: Any) -> dict[str, list[TokenizedPair]]:
    check_jsonl(path, ("split", "example", "chosen", "rejected", "ref_chosen", "ref_rejected"))
    by_split: dict[str, list[TokenizedPair]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        (tp,) = tokenize_pairs(tokenizer, dataset, [PreferencePair.from_row(row)])
        tp.ref_chosen, tp.ref_rejected = row["ref_chosen"], row["ref_rejected"]
        by_split.setdefault(row["split"], []).append(tp)
    return by_split

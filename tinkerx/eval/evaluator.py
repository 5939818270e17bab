"""Held-out evaluation: sample every example, grade it, keep per-example records.

An evaluator is called with a sampling client, like the cookbook's evaluators, so the same object
scores the baseline, intermediate checkpoints and the final weights on either backend.

An answer the reward cannot grade (a numeric reward on a ground truth without a number) is not
sent to it: it counts as incorrect, as ``ungradable`` in the metrics, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

from tinkerx.errors import ConfigError
from tinkerx.eval.pass_at_k import code_metrics
from tinkerx.eval.tags import check_group_by, example_tags, tag_metrics
from tinkerx.eval.ungraded import ungraded_result
from tinkerx.judges.evaluation import judge_records, judged_metrics
from tinkerx.rewards.exact_match import ExactMatchReward
from tinkerx.rewards.gradable import can_grade
from tinkerx.rewards.numeric import NumericReward
from tinkerx.sampler import prompt_seeds, sample_chats

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    metrics: dict[str, float]
    records: list[dict[str, Any]]


class Evaluator:
    def __init__(
        self,
        dataset: Any,
        tokenizer: Any,
        reward: Any,
        split: str = "test",
        max_examples: int | None = 200,
        num_samples: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 64,
        seed: int = 0,
        group_by: Sequence[str] | None = None,
        judges: Sequence[Any] = (),
    ) -> None:
        if split not in ("train", "validation", "test"):
            raise ConfigError(f"evaluator.split must be train, validation or test, got {split!r}")
        if num_samples < 1:
            raise ConfigError(f"evaluator.num_samples must be >= 1, got {num_samples}")
        if max_tokens < 1:
            raise ConfigError(f"evaluator.max_tokens must be >= 1, got {max_tokens}")
        self.dataset, self.tokenizer, self.reward = dataset, tokenizer, reward
        self.split, self.max_examples, self.num_samples = split, max_examples, num_samples
        self.temperature, self.max_tokens, self.seed = temperature, max_tokens, seed
        # Results by tag: record fields to break the metrics down by, checked now, before any step.
        self.group_by = [group_by] if isinstance(group_by, str) else list(group_by or [])
        if dataset is not None:
            check_group_by(self.group_by, self.examples(), f"dataset {getattr(dataset, 'name', 'the data set')} ({split} split)")
        self._exact, self._numeric = ExactMatchReward(), NumericReward()
        self.judges = list(judges)  # rubric judges (evaluator.judges, built by tinkerx.build): judged rates beside accuracy

    def examples(self) -> list[Any]:
        examples = self.dataset.split(self.split)
        return examples[: self.max_examples] if self.max_examples else examples

    def __call__(self, sampling_client: Any) -> EvalResult:
        result = self._evaluate(sampling_client)
        judge_records(self.judges, result.records)  # evaluator.judges: each reply judged, rates beside accuracy
        result.metrics.update(judged_metrics(result.records))
        return result

    def _evaluate(self, sampling_client: Any) -> EvalResult:
        examples = self.examples()
        if self.reward is None:  # conversations, or any data without a ground truth to grade
            return self._ungraded(sampling_client, examples)
        futures = self._sample(sampling_client, examples)
        records: list[dict[str, Any]] = []
        for ex, future in zip(examples, futures):
            gradable = can_grade(self.reward, ex.answer)
            tags = {"tags": example_tags(ex, self.group_by)} if self.group_by else {}
            for sample_index, sample in enumerate(future.result()):
                record = {"id": ex.id, "sample": sample_index, "question": ex.question, "answer": ex.answer, **tags}
                if sample.error is not None:  # a failed request is counted, never graded as a wrong answer
                    records.append({**record, "completion": "", "error": sample.error, "reward": 0.0, "correct": False,
                                    "exact_match": False, "numeric_match": False, "num_tokens": 0, "truncated": False})
                    continue
                completion = sample.text
                # A reward with ``details`` (code_tests) grades every record at once, below.
                score = float(self.reward.compute_reward(completion, ex.answer)) if gradable and not _has_details(self.reward) else 0.0
                records.append(
                    {
                        **record,
                        "completion": completion,
                        "reward": score,
                        "correct": score >= 0.5,
                        "ungradable": not gradable,
                        "exact_match": self._exact.compute_reward(completion, ex.answer) >= 1.0,
                        "numeric_match": self._numeric_match(completion, ex.answer),
                        "num_tokens": sample.num_tokens,
                        "truncated": sample.stop_reason == "length",
                    }
                )
        _warn_ungradable(records, getattr(self.reward, "name", type(self.reward).__name__))
        _add_details(self.reward, records)
        return EvalResult(summarize(records), records)

    def _ungraded(self, sampling_client: Any, examples: list[Any]) -> EvalResult:
        """No reward: sampled replies kept beside the reference (tinkerx.eval.ungraded), and, for
        conversations, the held-out per-token NLL and perplexity."""
        futures = self._sample(sampling_client, examples)
        return EvalResult(*ungraded_result(sampling_client, self.tokenizer, self.dataset, examples, futures, self.dataset.split(self.split)))

    def _sample(self, sampling_client: Any, examples: list[Any]) -> list[Any]:
        """``num_samples`` replies to every example, each example with its own seed (``prompt_seeds``);
        every request is issued before any is waited on: the backend keeps them all in flight."""
        from tinker import types

        params = types.SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature, seed=self.seed)
        messages = [self.dataset.messages(ex) for ex in examples]
        return sample_chats(sampling_client, self.tokenizer, messages, self.num_samples, params, prompt_seeds(self.seed, len(examples)))

    def _numeric_match(self, completion: str, answer: str) -> bool:
        # A ground truth with no number (MATH's "p - q") is no numeric item; the run's reward, not
        # this side metric, decides whether it counts as ungradable.
        return self._numeric.gradable(answer) and self._numeric.compute_reward(completion, answer) >= 1.0


def _has_details(reward: Any) -> bool:
    return callable(getattr(getattr(reward, "reward", reward), "details", None))


def _add_details(reward: Any, records: list[dict[str, Any]]) -> None:
    """Grades, in one parallel batch, the records of a reward that says what happened to each
    (``details(completions, truths) -> [{"reward": ..., ...}]``) and keeps those fields on them."""
    if not _has_details(reward):
        return
    graded = [r for r in records if not r.get("error") and not r.get("ungradable")]
    inner = getattr(reward, "reward", reward)
    # A judge reward (reward=judge) reads each reply against the question it answers.
    asked = {"questions": [r["question"] for r in graded]} if getattr(inner, "reads_questions", False) else {}
    details = inner.details([r["completion"] for r in graded], [r["answer"] for r in graded], **asked)
    for record, detail in zip(graded, details):
        record.update(detail)
        record["correct"] = bool(detail.get("passed", detail["reward"] >= 0.5))


def _warn_ungradable(records: list[dict[str, Any]], reward_name: str) -> None:
    ungradable = [r for r in records if r.get("ungradable")]
    if ungradable:
        log.warning(
            "%d of %d answers cannot be graded by reward %s (e.g. %r); they count as incorrect (metric 'ungradable')",
            len(ungradable), len(records), reward_name, ungradable[0]["answer"][:40],
        )


def summarize(records: list[dict[str, Any]]) -> dict[str, float]:
    """Metrics over the graded records; records whose request failed are only counted."""
    errors = sum(1 for r in records if r.get("error"))
    records = [r for r in records if not r.get("error")]
    n = max(1, len(records))
    return {
        "accuracy": sum(r["correct"] for r in records) / n,
        "reward_mean": sum(r["reward"] for r in records) / n,
        "exact_match": sum(r["exact_match"] for r in records) / n,
        "numeric_match": sum(r["numeric_match"] for r in records) / n,
        "ungradable": float(sum(bool(r.get("ungradable")) for r in records)),
        "mean_completion_tokens": sum(r["num_tokens"] for r in records) / n,
        "truncation_rate": sum(r["truncated"] for r in records) / n,
        "num_examples": float(len(records)),
        **({"num_errors": float(errors)} if errors else {}),
        **code_metrics(records),  # pass@k and outcome counts, for code graded by running it
        **tag_metrics(records),  # per tag value, for records that carry tags (evaluator.group_by)
        **judged_metrics(records),  # judge/<rubric>/rate ... of records a rubric judge judged (evaluator.judges)
    }

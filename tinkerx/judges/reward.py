"""``reward=judge``: a rubric judge's score of each completion as the reward (conf/reward/judge.yaml).

The reward is the judge's score: with label probabilities the rubric's expected score (a
continuous signal for GRPO), else the parsed label's score. A judgment the judge could not give
(unparsed, a failed request) scores 0 and is counted; ``metrics()`` reports the counts as
``judge/<rubric>/...`` beside ``reward/errors``.

``score_batch`` judges a whole batch at once (GuardedReward hands it the batch and the questions),
``details`` every evaluated reply at once; ``compute_reward`` judges one completion, without the question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from tinkerx.judges.judge import LLMJudge


class JudgeReward:
    name = "judge"
    reads_questions = True  # the evaluator hands ``details`` the questions too

    def __init__(self, judge: LLMJudge) -> None:
        self.judge = judge
        self.model_loader = judge.model_loader  # build serves the judge's own model beside the policy's

    def start(self, service: Any, policy_base_model: str, policy_tokenizer: Any, run_dir: Path | None = None) -> None:
        self.judge.start(service, policy_base_model, policy_tokenizer, run_dir)

    def compute_reward(self, completion: str, ground_truth: str) -> float:
        return self.score_batch([completion], [ground_truth])[0]

    def score_batch(self, completions: Sequence[str], ground_truths: Sequence[str], questions: Sequence[str] | None = None) -> list[float]:
        prompts = list(questions) if questions is not None else [""] * len(completions)
        return [j.score for j in self.judge.judge_replies(prompts, completions, ground_truths)]

    def details(self, completions: Sequence[str], ground_truths: Sequence[str], questions: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Evaluation's hook: every reply judged in one batch, the judgment kept on its record."""
        prompts = list(questions) if questions is not None else [""] * len(completions)
        judgments = self.judge.judge_replies(prompts, completions, ground_truths)
        return [{"reward": j.score, "passed": j.passed, f"judge/{self.judge.name}": j.to_json()} for j in judgments]

    def metrics(self) -> dict[str, float]:
        return self.judge.metrics()

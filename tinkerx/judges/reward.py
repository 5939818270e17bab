"""``reward=judge``: a rubric judge's score of each completion as the reward (conf/reward/judge.yaml).

The reward is the judge's score: with label probabilities the rubric's expected score (a
continuous signal for GRPO), else the parsed label's score. A judgment the judge could not give
(unparsed, a failed request) scores 0 and is counted; ``metrics()`` reports the outcomes of the
rollouts judged since it was last asked (a trainer asks once a step) as ``judge/<rubric>/judged``,
``unparsed`` and ``errors``: the same figures whether a judgment was asked or read from the cache,
so a resumed or reproduced run logs what the original logged.

``score_batch`` judges a whole batch at once (GuardedReward hands it the batch and the questions),
``details`` every evaluated reply at once; ``compute_reward`` judges one completion, without the question.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from tinkerx.judges.judge import LLMJudge


class JudgeReward:
    name = "judge"
    reads_questions = True  # the evaluator hands ``details`` the questions too

    def __init__(self, judge: LLMJudge) -> None:
        self.judge = judge
        self.model_loader = judge.model_loader  # build serves the judge's own model beside the policy's
        self._outcomes: Counter[str] = Counter()  # rollouts' judgments since metrics() was last asked
        self._lock = threading.Lock()

    def start(self, service: Any, policy_base_model: str, policy_tokenizer: Any, run_dir: Path | None = None) -> None:
        self.judge.start(service, policy_base_model, policy_tokenizer, run_dir)

    def compute_reward(self, completion: str, ground_truth: str) -> float:
        return self.judge.judge_replies([""], [completion], [ground_truth])[0].score

    def score_batch(self, completions: Sequence[str], ground_truths: Sequence[str], questions: Sequence[str] | None = None) -> list[float]:
        prompts = list(questions) if questions is not None else [""] * len(completions)
        judgments = self.judge.judge_replies(prompts, completions, ground_truths)
        with self._lock:
            self._outcomes.update(j.outcome for j in judgments)
        return [j.score for j in judgments]

    def details(self, completions: Sequence[str], ground_truths: Sequence[str], questions: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Evaluation's hook: every reply judged in one batch, the judgment kept on its record."""
        prompts = list(questions) if questions is not None else [""] * len(completions)
        judgments = self.judge.judge_replies(prompts, completions, ground_truths)
        return [{"reward": j.score, "passed": j.passed, f"judge/{self.judge.name}": j.to_json()} for j in judgments]

    def metrics(self) -> dict[str, float]:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, Counter()
        name = self.judge.name
        return {f"judge/{name}/judged": float(outcomes["judged"]), f"judge/{name}/unparsed": float(outcomes["unparsed"]),
                f"judge/{name}/errors": float(outcomes["error"])}

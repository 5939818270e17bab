"""On-policy distillation: the student samples, the teacher scores every sampled token.

Each step: take ``groups_per_batch`` prompts from a rotating pool, sample ``group_size``
completions from the student, have the teacher compute the logprob of each of those tokens (one
forward pass over prompt + completion, no sampling), and train with the ``importance_sampling``
loss on per-token advantages ``kl_coef * (teacher - student)``: a dense, per-token reverse-KL
signal. With ``reward_coef > 0`` the task reward's group-relative advantage (as in GRPO) is added
to every token of a completion.
"""

from __future__ import annotations

import time
from typing import Any

from tinkerx.errors import ConfigError
from tinkerx.methods.distill.advantages import reverse_kl_advantages, token_advantage_datum
from tinkerx.methods.distill.teacher import prompts_fitting_teacher, teacher_of
from tinkerx.methods.shared.policy import OnePolicy, check_warm_start, evaluate_sampler, open_policy, policy_sampler, resume_policy
from tinkerx.methods.shared.pool import PromptPool
from tinkerx.methods.shared.rollout_metrics import rollout_metrics
from tinkerx.methods.shared.rollouts import Group, sample_groups, score_groups
from tinkerx.pipeline import Pipeline, ResumeState

SHOWN = ("distill/reverse_kl", "reward/accuracy", "eval/accuracy", "eval/of_teacher")


class OnPolicyDistill(OnePolicy):
    name = "distill"
    shown = SHOWN
    step_index = total_steps = 0  # until setup: a run stopped by a check in setup reports that check, not a missing attribute

    def __init__(
        self,
        group_size: int,
        groups_per_batch: int,
        kl_coef: float,
        discount: float,
        reward_coef: float,
        advantage_clip: float | None,
        init_from: str | None,
        evaluate_teacher: bool,
        evaluate_baseline: bool,
        save_final: bool,
    ) -> None:
        self.group_size, self.groups_per_batch = group_size, groups_per_batch
        self.kl_coef, self.discount, self.reward_coef, self.advantage_clip = kl_coef, discount, reward_coef, advantage_clip
        self.init_from = init_from
        self.evaluate_teacher, self.evaluate_baseline, self.save_final = evaluate_teacher, evaluate_baseline, save_final

    def setup(self, p: Pipeline, resume: ResumeState | None = None) -> None:
        self.teacher = teacher_of(p)
        if self.reward_coef and p.reward is None:
            raise ConfigError("method.reward_coef > 0 needs a reward: choose one with reward=NAME")
        check_warm_start(p, self.init_from)
        self.teacher.start(p.service, p.base_model, p.tokenizer, same_tokenizer=True)
        self.p = p
        # The teacher scores every sampled prompt + reply: both must fit its context too.
        self.pool = PromptPool(prompts_fitting_teacher(p, self.teacher, p.dataset.train, log=resume is None), seed=p.seed)
        self.total_steps, self.step_index = p.training.max_steps, 0
        self._summary: dict[str, Any] = {"teacher": {"source": self.teacher.name}, "init_from": self.init_from}
        self._sampled_tokens = 0  # cumulative, to compare methods at equal sampling cost
        if resume is None:
            self.client = open_policy(p, self.init_from)
            return
        self.client = resume_policy(p, resume.checkpoints["policy"])
        s = resume.method_state
        self.step_index, self._summary, self._sampled_tokens = s["step_index"], dict(s["summary"]), s["sampled_tokens"]
        self.pool.load_state(s["pool"])
        if p.reward is not None:
            p.reward.errors, p.reward.timeouts = s["reward_counts"]

    def state(self) -> dict[str, Any]:
        counts = [self.p.reward.errors, self.p.reward.timeouts] if self.p.reward is not None else None
        return {"step_index": self.step_index, "summary": self._summary, "sampled_tokens": self._sampled_tokens,
                "pool": self.pool.state(), "reward_counts": counts}  # fmt: skip

    def start(self) -> dict[str, Any] | None:
        metrics: dict[str, Any] = {}
        if self.evaluate_teacher and self.p.evaluator is not None:  # the ceiling, measured once
            self._summary["teacher"].update(evaluate_sampler(self.p, self.teacher.client, "teacher"))
            metrics["teacher/accuracy"] = self._summary["teacher"]["accuracy"]
        if self.evaluate_baseline and self.p.evaluator is not None:
            self._summary["baseline"] = self.evaluate("baseline")
            metrics.update(self._eval_metrics(self._summary["baseline"]))
        return metrics or None

    def step(self) -> dict[str, Any]:
        p, step = self.p, self.step_index
        start = time.perf_counter()
        sampler = policy_sampler(self.client)
        groups = sample_groups(sampler, p.tokenizer, p.dataset, self.pool.take(self.groups_per_batch), self.group_size, p.sampling.params())
        sampled = time.perf_counter()
        teacher_T = self._teacher_logprobs(groups)
        scored = time.perf_counter()
        if p.reward is not None:
            score_groups(groups, p.reward)
        metrics = {**rollout_metrics(groups), "pool/passes": self.pool.passes}
        self._sampled_tokens += metrics["sample/tokens"]
        metrics["sample/tokens_total"] = self._sampled_tokens
        metrics.update(self._train(groups, teacher_T, step))
        if p.evaluator is not None and (step == self.total_steps - 1 or (p.training.eval_every and (step + 1) % p.training.eval_every == 0)):
            self._summary["final"] = self.evaluate(f"step_{step + 1:06d}")
            metrics.update(self._eval_metrics(self._summary["final"]))
        self.step_index += 1
        done = time.perf_counter()
        metrics.update({"time/sample_s": sampled - start, "time/teacher_s": scored - sampled, "time/step_s": done - start})
        return metrics

    def _teacher_logprobs(self, groups: list[Group]) -> list[list[float]]:
        """The teacher's logprob of every completion token; all requests in flight before any wait."""
        from tinker import types

        futures = [
            self.teacher.client.compute_logprobs(types.ModelInput.from_ints(g.prompt_T + s.tokens_T)) for g in groups for s in g.samples
        ]
        lengths = [(len(g.prompt_T), len(s.tokens_T)) for g in groups for s in g.samples]
        return [list(f.result())[n_prompt : n_prompt + n] for f, (n_prompt, n) in zip(futures, lengths)]

    def _train(self, groups: list[Group], teacher_T: list[list[float]], step: int) -> dict[str, Any]:
        p = self.p
        pairs = [(g, s) for g in groups for s in g.samples]
        data, kl_sum, teacher_sum, tokens = [], 0.0, 0.0, 0
        for (g, s), t_T in zip(pairs, teacher_T):
            if not s.tokens_T:
                continue
            advantages_T = reverse_kl_advantages(s.logprobs_T, t_T, self.kl_coef, self.discount, self.advantage_clip)
            if self.reward_coef:
                advantages_T = [a + self.reward_coef * s.advantage for a in advantages_T]
            data.append(token_advantage_datum(g.prompt_T, s.tokens_T, s.logprobs_T, advantages_T))
            kl_sum += sum(s.logprobs_T) - sum(t_T)
            teacher_sum += sum(t_T)
            tokens += len(s.tokens_T)
        adam = p.optim.adam_params(step, self.total_steps)
        if not data:
            return {"train/datums": 0, "optim/lr": adam.learning_rate}
        # Both requests go out before waiting: no idle round trip against the service.
        fwd = self.client.forward_backward(data, "importance_sampling")
        opt = self.client.optim_step(adam)
        out, opt_out = fwd.result(), opt.result()
        return {
            "distill/reverse_kl": kl_sum / tokens,  # per token, estimated on the student's own samples
            "distill/teacher_logprob": teacher_sum / tokens,
            "train/loss": out.metrics["loss:sum"] / tokens,
            "train/datums": len(data),
            "optim/lr": adam.learning_rate,
            **{f"optim/{k}": v for k, v in (opt_out.metrics or {}).items() if k != "learning_rate"},
        }

    def _eval_metrics(self, result: dict[str, Any]) -> dict[str, Any]:
        metrics = {f"eval/{k}": v for k, v in result.items()}
        teacher = self._summary["teacher"].get("accuracy")
        if teacher:
            metrics["eval/of_teacher"] = result["accuracy"] / teacher  # the student's share of the ceiling
        return metrics

    def summary(self) -> dict[str, Any]:
        return {**self._summary, "steps": self.step_index, "sampled_tokens": self._sampled_tokens}

    def finish(self) -> dict[str, Any]:
        if self.save_final:
            self._summary["checkpoint"] = self.save("final")["policy"]
        return self.summary()


"""GRPO on verifiable rewards.

Each step: take ``groups_per_batch`` prompts from a rotating pool, sample ``group_size``
completions of each (all requests in flight at once), grade them with the reward, and push every
completion's tokens up or down by its advantage, ``reward - mean(group reward)``. A group whose
rewards are all equal has zero advantage everywhere: it is skipped and counted (ALL-0 / ALL-1).
The loss is one of Tinker's RL losses with the sampler's own logprobs; ``method.variant`` picks a
paper's recipe (GRPO, Dr. GRPO, DAPO, GSPO, CISPO) as a preset of switches (methods/grpo/variants.py).

Episodes: every rollout is an episode of tinkerx/envs. Without ``env=`` each is one turn -- the
data set's prompt, scored by ``reward=``; with ``env=NAME`` (conf/env/) groups are that environment's
tasks, each episode runs up to ``env.max_turns`` turns, its reward is the environment's, only the
tokens the policy sampled are trained, and held-out evaluation plays ``evaluator.num_samples`` episodes
per test task with the evaluator's sampling settings (greedy by default).

``overlap_rollouts``: step t+1's rollouts are sent (with the weights step t sampled with) before
step t trains, so sampling and training run at the same time wherever the backend can (the Tinker
service; ``backend=local`` with a rollout worker). Each batch is then sampled by the weights one
update old, never older; the loss's importance ratio -- trainer logprob over the sampler's own
logprob of each token -- corrects for it, as it does for any sampler/trainer mismatch.
"""

from __future__ import annotations

import time
from typing import Any

from tinkerx.envs.evaluate import evaluate_env
from tinkerx.envs.one_turn import POLICY
from tinkerx.envs.records import episode_record
from tinkerx.errors import ConfigError
from tinkerx.methods.grpo.dynamic_sampling import draw_with_signal, signal_groups
from tinkerx.methods.grpo.objective import kl_to_reference, policy_datums, reference_logprobs, trainable
from tinkerx.methods.grpo.variants import resolve_recipe, yaml_presets
from tinkerx.methods.shared.advantages import overlong_penalty
from tinkerx.methods.shared.policy import OnePolicy, base_sampler, check_warm_start, open_policy, policy_sampler, resume_policy, save_policy
from tinkerx.methods.shared.pool import PromptPool
from tinkerx.methods.shared.rollout_metrics import episode_metrics, rollout_metrics, sampler_trainer_kl
from tinkerx.methods.shared.rollouts import Group, PendingGroups, Sample, launch_env_groups, launch_groups, score_groups
from tinkerx.pipeline import Pipeline, ResumeState
from tinkerx.rewards.guarded import reward_metrics
from tinkerx.runs.checkpoints import resolve_checkpoint
from tinkerx.runs.display import console

NO_UPDATE_WARNING = (
    "no GRPO update was made: every group's samples scored alike (ALL-0 or ALL-1 in metrics.jsonl). "
    "Likely causes: completions truncated (sample/truncation_rate; raise sampling.max_tokens), a reward too "
    "strict for the model (check samples.jsonl), or data too easy (all correct)"
)
SHOWN = ("reward/mean", "reward/accuracy", "groups/all_0", "groups/all_1", "sample/truncation_rate", "reward/errors", "eval/accuracy",
         "episodes/turns", "eval/success_rate")


class GRPO(OnePolicy):
    name = "grpo"

    def __init__(
        self,
        group_size: int = 8,
        groups_per_batch: int = 16,
        loss_fn: str | None = None,
        loss_fn_config: dict[str, float] | None = None,
        normalize_std: bool | None = None,
        init_from: str | None = None,
        checkpoint_threshold: float | None = None,
        checkpoint_min_steps: int = 0,
        samples_per_step: int = 4,
        evaluate_baseline: bool = True,
        save_final: bool = True,
        variant: str | None = None,
        variants: dict[str, dict[str, Any]] | None = None,
        overlap_rollouts: bool = False,
        **switches: Any,  # the recipe's other switches (clip_low, aggregation, kl_coef, ...): see variants.py
    ) -> None:
        explicit = {"loss_fn": loss_fn, "normalize_std": normalize_std, **switches}
        self.recipe = resolve_recipe(variant, {k: dict(v) for k, v in variants.items()} if variants is not None else yaml_presets(), explicit)
        self.variant = variant
        if group_size < 2:
            raise ConfigError(f"method.group_size must be >= 2 (advantages compare samples of a group), got {group_size}")
        if groups_per_batch < 1:
            raise ConfigError(f"method.groups_per_batch must be >= 1, got {groups_per_batch}")
        if checkpoint_min_steps < 0 or samples_per_step < 0:
            raise ConfigError("method.checkpoint_min_steps and method.samples_per_step must be >= 0")
        self.group_size, self.groups_per_batch = group_size, groups_per_batch
        self.loss_fn, self.normalize_std = self.recipe.loss_fn, self.recipe.normalize_std
        # An explicit loss_fn_config is passed as is, over the thresholds the recipe derives.
        self.loss_fn_config = {**(self.recipe.loss_fn_config() or {}), **(dict(loss_fn_config) if loss_fn_config else {})} or None
        self.init_from = resolve_checkpoint(init_from, "method.init_from") if init_from else None
        self.checkpoint_threshold, self.checkpoint_min_steps = checkpoint_threshold, checkpoint_min_steps
        self.samples_per_step = samples_per_step
        self.evaluate_baseline, self.save_final = evaluate_baseline, save_final
        self.overlap_rollouts = bool(overlap_rollouts)

    shown = SHOWN

    def setup(self, p: Pipeline, resume: ResumeState | None = None) -> None:
        self.env = p.components.get("env")  # a multi-turn environment (env=NAME), or None: the data set's prompts
        self._check(p)
        self.p = p
        self.pool = PromptPool(self.env.train if self.env is not None else p.dataset.train, seed=p.seed)
        self.total_steps, self.step_index = p.training.max_steps, 0
        self._summary: dict[str, Any] = {"init_from": self.init_from, "auto_checkpoints": []}
        self._updates = 0  # optimizer steps taken: 0 at the end means no group ever had signal
        self._elapsed_before = 0.0  # training time of earlier sessions of this run (resume)
        # Overlapped rollouts: the next step's requests in flight, the updates made when they were
        # sent, and the prompt pool as it was before they were taken (what a resume point saves: a
        # resumed run samples those prompts again rather than skipping them).
        self._pending: PendingGroups | None = None
        self._pending_updates = 0
        self._pool_before_pending: dict[str, Any] | None = None
        if resume is None:
            self.client = open_policy(p, self.init_from)
        else:
            self.client = resume_policy(p, resume.checkpoints["policy"])
            s = resume.method_state
            self.step_index, self._summary, self._updates = s["step_index"], dict(s["summary"]), s["updates"]
            self._elapsed_before = s["elapsed_s"]
            self.pool.load_state(s["pool"])
            if p.reward is not None:
                p.reward.errors, p.reward.timeouts = s["reward_counts"]
        # The KL penalty's reference: the frozen base model, through logprobs of the sampled tokens.
        self.reference = base_sampler(p) if self.recipe.kl_coef > 0 else None
        self._started = time.perf_counter()

    def state(self) -> dict[str, Any]:
        return {
            "step_index": self.step_index,
            "summary": self._summary,
            "updates": self._updates,
            "elapsed_s": self._elapsed(),
            "pool": self._pool_before_pending if self._pending is not None else self.pool.state(),
            "reward_counts": self._reward_counts(),
        }

    def start(self) -> dict[str, Any] | None:
        if self.evaluate_baseline and self.p.evaluator is not None:
            self._summary["baseline"] = self.evaluate("baseline")
            return {f"eval/{k}": v for k, v in self._summary["baseline"].items()}
        return None

    def step(self) -> dict[str, Any]:
        p, step, total = self.p, self.step_index, self.total_steps
        metrics = self._step(p, self.client, self.pool, step, total)
        if self._holdout_due(p, step, total):
            evaluating = time.perf_counter()
            metrics.update(self._holdout(p, self.client, step, self._summary))
            metrics["time/eval_s"] = time.perf_counter() - evaluating
        self.step_index += 1
        metrics["time/elapsed_s"] = self._elapsed()  # since the first step: "within N minutes"
        return metrics

    def evaluate(self, name: str) -> dict[str, Any]:
        if self.env is None:
            return super().evaluate(name)
        p, ev = self.p, self.p.evaluator
        # The evaluator's sampling (greedy by default) and its num_samples episodes per test task. Sampled,
        # no fixed seed: tasks often open with the same prompt, and one seed would replay one episode for all.
        seed = ev.seed if ev.temperature == 0 else None
        params = p.sampling.params(temperature=ev.temperature, max_tokens=ev.max_tokens, seed=seed)
        metrics, records = evaluate_env(self.env, {POLICY: self.sampling_client()}, p.tokenizer, params, ev.num_samples)
        p.recorder.write_jsonl(f"eval/{name}.jsonl", records)
        return metrics

    def _launch(self, sampler: Any, tasks: list[Any]) -> PendingGroups:
        p = self.p
        if self.env is None:
            return launch_groups(sampler, p.tokenizer, p.dataset, tasks, self.group_size, p.sampling.params())
        groups = [self.env.group(t) for t in tasks]
        return launch_env_groups({POLICY: sampler}, p.tokenizer, groups, self.group_size, p.sampling.params(), self.env.limits)

    def _reward_counts(self) -> list[int]:
        """The reward's errors and timeouts so far; an environment run may have no reward (``reward=null``)."""
        reward = self.p.reward
        return [reward.errors, reward.timeouts] if reward is not None else [0, 0]

    def _elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._started

    def summary(self) -> dict[str, Any]:
        summary = {**self._summary, "steps": self.step_index, "updates": self._updates}
        summary["reward_failures"] = sum(self._reward_counts())
        if self.step_index and not self._updates:
            summary["warning"] = NO_UPDATE_WARNING
        return summary

    def saved_checkpoints(self) -> list[dict[str, Any]]:
        """The best-so-far checkpoints ``checkpoint_threshold`` asked for (also ``auto_checkpoints`` in the summary)."""
        return [{"name": f"auto_step_{c['step']:06d}", **c} for c in self._summary["auto_checkpoints"]]

    def finish(self) -> dict[str, Any]:
        if self.step_index < self.total_steps and self.p.evaluator is not None:
            # Stopped early (a driver that steps on request, e.g. an agent over MCP): the held-out
            # schedule never reached its last evaluation, so "final" would be stale or missing.
            self._summary["final"] = self.evaluate("final")
        if self.save_final:
            self._summary["checkpoint"] = self.save("final")["policy"]
        summary = self.summary()
        if "warning" in summary:
            console.print(f"[yellow]warning:[/yellow] {summary['warning']}")
        return summary

    # ---- one step --------------------------------------------------------------------------
    def _step(self, p: Pipeline, client: Any, pool: PromptPool, step: int, total: int) -> dict[str, Any]:
        start = time.perf_counter()
        sampler = policy_sampler(client)
        failures = sum(self._reward_counts())
        seconds = {"sample": 0.0, "reward": 0.0}
        r = self.recipe
        penalty = (lambda s: overlong_penalty(s.policy_tokens, p.sampling.max_tokens, r.overlong_buffer)) if r.overlong == "soft" else None
        # Rollouts sent during the previous step (overlap_rollouts) are this step's first draw, of
        # groups_per_batch prompts; dynamic sampling's extra draws are sampled now.
        ready, self._pending = self._pending, None
        # Updates between the weights that sampled the first draw and the weights it trains.
        staleness = self._updates - self._pending_updates if ready is not None else 0

        def draw(n: int) -> list[Group]:
            nonlocal ready
            began = time.perf_counter()
            pending = ready if ready is not None else self._launch(sampler, pool.take(n))
            ready = None
            drawn = pending.collect()
            sampled = time.perf_counter()
            score_groups(drawn, p.reward, r.normalize_std, penalty)
            seconds["sample"] += sampled - began
            seconds["reward"] += time.perf_counter() - sampled
            return drawn

        if r.dynamic_sampling:
            groups, rounds = draw_with_signal(draw, self.groups_per_batch, r.dynamic_sampling_max_rounds)
            batch = signal_groups(groups, self.groups_per_batch)
        else:
            groups, rounds = draw(self.groups_per_batch), 0
            batch = groups
        scored = time.perf_counter()
        metrics = {**rollout_metrics(groups), **episode_metrics(groups), "reward/errors": sum(self._reward_counts()) - failures, "pool/passes": pool.passes}
        metrics.update(reward_metrics(p.reward))  # e.g. a code reward's outcomes so far: why rewards are 0
        if r.dynamic_sampling:
            metrics.update({"sample/extra_draws": rounds, "groups/drawn": len(groups)})
        if self.overlap_rollouts:
            metrics["sample/staleness"] = staleness
            if step + 1 < total:  # the next step's rollouts go out now, sampled while this step trains
                self._pool_before_pending, self._pending_updates = pool.state(), self._updates
                self._pending = self._launch(sampler, pool.take(self.groups_per_batch))
        metrics.update(self._train(p, client, batch, step, total))
        self._write_samples(p, step, groups[: self.samples_per_step])
        done = time.perf_counter()
        metrics.update({"time/sample_s": seconds["sample"], "time/reward_s": seconds["reward"], "time/train_s": done - scored, "time/step_s": done - start})
        return metrics

    def _train(self, p: Pipeline, client: Any, groups: list[Group], step: int, total: int) -> dict[str, Any]:
        trained: list[tuple[Group, Sample]] = trainable(groups, self.recipe)
        adam = p.optim.adam_params(step, total)
        if not trained:  # every group flat: no signal, so no update this step
            return {"train/datums": 0, "optim/lr": adam.learning_rate}
        self._updates += 1
        reference_T = reference_logprobs(self.reference, trained) if self.reference is not None else None
        data = policy_datums(trained, self.recipe, p.sampling.max_tokens, reference_T)
        # Both requests go out before waiting: no idle round trip against the service.
        fwd = client.forward_backward(data, self.loss_fn, self.loss_fn_config)
        opt = client.optim_step(adam)
        out, opt_out = fwd.result(), opt.result()
        completion_tokens = sum(s.policy_tokens for _, s in trained)
        extra = {"train/kl_reference": kl_to_reference(trained, reference_T)} if reference_T is not None else {}
        # With sum aggregation the loss is per token after dividing; the others are normalised already.
        per_token = completion_tokens if self.recipe.aggregation == "sum" else 1
        return {
            **extra,
            "train/loss": out.metrics["loss:sum"] / per_token,
            "train/datums": len(data),
            "train/tokens": sum(d.model_input.length for d in data),
            "train/kl_sampler_trainer": sampler_trainer_kl(trained, [o["logprobs"] for o in out.loss_fn_outputs]),
            "optim/lr": adam.learning_rate,
            **{f"optim/{k}": v for k, v in (opt_out.metrics or {}).items() if k != "learning_rate"},
        }

    # ---- around the steps ------------------------------------------------------------------
    def _check(self, p: Pipeline) -> None:
        if self.env is not None:
            if not self.env.train:
                raise ConfigError("env has no training tasks (env.train_size)")
        elif p.reward is None:
            raise ConfigError("grpo needs a reward: choose one with reward=NAME")
        elif not p.dataset.train:
            raise ConfigError(f"dataset {p.dataset.name} has no training examples to draw prompts from (give dataset.path=TRAIN.jsonl)")
        if p.evaluator is not None and p.evaluator.split == "train":
            raise ConfigError("evaluator.split must not be train for grpo: holdout prompts are never trained on")
        check_warm_start(p, self.init_from)

    def _holdout_due(self, p: Pipeline, step: int, total: int) -> bool:
        every, last = p.training.eval_every, step == total - 1
        return p.evaluator is not None and (last or bool(every and (step + 1) % every == 0))

    def _holdout(self, p: Pipeline, client: Any, step: int, summary: dict[str, Any]) -> dict[str, Any]:
        """Holdout evaluation; saves a checkpoint when it sets a new best at or above the threshold."""
        holdout = summary["final"] = self.evaluate(f"step_{step + 1:06d}")
        metrics = {f"eval/{k}": v for k, v in holdout.items()}
        saved = summary["auto_checkpoints"]
        best = max((c["holdout_reward"] for c in saved), default=float("-inf"))
        reward = holdout["reward_mean"]
        if self.checkpoint_threshold is not None and step + 1 >= self.checkpoint_min_steps and reward >= self.checkpoint_threshold and reward > best:
            path = save_policy(client, f"auto_step_{step + 1:06d}")
            saved.append({"step": step + 1, "holdout_reward": reward, "path": path})
            metrics["checkpoint/saved"] = 1
        return metrics

    def _write_samples(self, p: Pipeline, step: int, groups: list[Group]) -> None:
        if self.env is not None:  # episodes turn by turn: episodes/step_NNNNNN.jsonl
            episodes = [episode_record(e, step=step + 1, group=i) for i, g in enumerate(groups) for e in g.episodes]
            if episodes:
                p.recorder.write_jsonl(f"episodes/step_{step + 1:06d}.jsonl", episodes)
            return
        rows = [
            {
                "step": step + 1,
                "id": g.example.id,
                "question": g.example.question,
                "answer": g.example.answer,
                "group": g.kind,
                "samples": [
                    {"text": s.text, "reward": s.reward, "advantage": s.advantage, "tokens": len(s.tokens_T), "stop_reason": s.stop_reason}
                    for s in g.samples
                ],
            }
            for g in groups
        ]
        if rows:
            p.recorder.write_jsonl("samples.jsonl", rows, append=True)

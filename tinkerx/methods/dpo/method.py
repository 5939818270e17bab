"""Direct preference optimisation on (prompt, chosen, rejected) pairs, against a frozen reference.

Pairs come from ``dataset=preference_jsonl`` or, with ``method.pairs_from=sampling`` on a verifiable
data set (arithmetic, GSM8K, ...), from the starting model itself: each prompt is sampled
``pair_samples`` times and a correct reply is paired with an incorrect one (held-out pairs from the
test split). The reference is the starting weights (the base model, or ``init_from``); its logprobs
are computed once per pair and cached with the pairs in ``pairs.jsonl``, which resume reads back.
Each step trains ``training.batch_size`` pairs with ``forward_backward_custom`` and the DPO loss
(``methods/dpo/loss.py``): the same call on Tinker and on the local backend.
"""

from __future__ import annotations

import time
from typing import Any

from tinkerx.errors import ConfigError
from tinkerx.methods.dpo.loss import VARIANTS, dpo_loss_fn, preference_accuracy, sequence_logprobs
from tinkerx.methods.dpo.pairs import TokenizedPair, add_reference_logprobs, read_pair_cache, sample_pairs, tokenize_pairs
from tinkerx.methods.shared.policy import OnePolicy, check_warm_start, evaluate_sampler, open_policy, policy_sampler, resume_policy
from tinkerx.methods.shared.pool import PromptPool
from tinkerx.pipeline import Pipeline, ResumeState
from tinkerx.runs.checkpoints import resolve_checkpoint
from tinkerx.runs.display import console

PAIR_SOURCES = ("dataset", "sampling")
CACHE_NAME = "pairs.jsonl"


class DPO(OnePolicy):
    name = "dpo"
    shown = ("dpo/loss", "dpo/reward_margin", "dpo/accuracy", "eval/pref_accuracy", "eval/accuracy")

    def __init__(
        self,
        beta: float = 0.1,
        variant: str = "sigmoid",
        pairs_from: str = "dataset",
        pair_samples: int = 8,
        pairs_per_prompt: int = 1,
        max_prompts: int | None = None,
        eval_pairs: int = 200,
        init_from: str | None = None,
        evaluate_baseline: bool = True,
        save_final: bool = True,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"method.variant {variant!r} is not a DPO variant; valid: {', '.join(VARIANTS)}")
        if beta <= 0:
            raise ConfigError(f"method.beta must be > 0, got {beta}")
        if pairs_from not in PAIR_SOURCES:
            raise ConfigError(f"method.pairs_from {pairs_from!r}; valid: {', '.join(PAIR_SOURCES)}")
        if pair_samples < 2 or pairs_per_prompt < 1 or (max_prompts is not None and max_prompts < 1):
            raise ConfigError("need method.pair_samples >= 2, method.pairs_per_prompt >= 1 and method.max_prompts >= 1 (or null)")
        self.beta, self.variant, self.pairs_from = beta, variant, pairs_from
        self.pair_samples, self.pairs_per_prompt, self.max_prompts, self.eval_pairs = pair_samples, pairs_per_prompt, max_prompts, eval_pairs
        self.init_from = resolve_checkpoint(init_from, "method.init_from") if init_from else None
        self.evaluate_baseline, self.save_final = evaluate_baseline, save_final

    def setup(self, p: Pipeline, resume: ResumeState | None = None) -> None:
        self._check(p)
        self.p = p
        self.total_steps, self.step_index = p.training.max_steps, 0
        self._summary: dict[str, Any] = {"init_from": self.init_from}
        self.client = open_policy(p, self.init_from) if resume is None else resume_policy(p, resume.checkpoints["policy"])
        self.pairs = self._pairs(p)
        self._summary["pairs"] = {split: len(pairs) for split, pairs in self.pairs.items()}
        if not self.pairs.get("train"):
            raise ConfigError("no training pairs: every prompt's samples were all correct or all wrong (raise method.pair_samples or sampling.temperature)")
        self.pool = PromptPool(self.pairs["train"], seed=p.seed)
        if resume is not None:
            s = resume.method_state
            self.step_index, self._summary = s["step_index"], dict(s["summary"])
            self.pool.load_state(s["pool"])

    def _check(self, p: Pipeline) -> None:
        has_pairs = hasattr(p.dataset, "pairs")
        if self.pairs_from == "dataset" and not has_pairs:
            raise ConfigError(
                f"dataset {p.dataset.name} has no preference pairs: use dataset=preference_jsonl, or method.pairs_from=sampling "
                "to make pairs from a verifiable data set"
            )
        if self.pairs_from == "sampling" and p.reward is None:
            raise ConfigError("method.pairs_from=sampling needs a reward to tell correct from incorrect samples: reward=NAME")
        check_warm_start(p, self.init_from)

    def _pairs(self, p: Pipeline) -> dict[str, list[TokenizedPair]]:
        """The run's pairs with reference logprobs: from the cache, or made now from the starting weights."""
        cache = p.run_dir / CACHE_NAME
        if cache.is_file():
            console.print(f"preference pairs read from {cache}")
            return read_pair_cache(cache, p.tokenizer, p.dataset)
        reference = policy_sampler(self.client)  # the starting weights, frozen from here on
        if self.pairs_from == "dataset":
            by_split = {"train": p.dataset.pairs["train"], "test": p.dataset.pairs["test"][: self.eval_pairs]}
        else:
            train = p.dataset.train[: self.max_prompts] if self.max_prompts else p.dataset.train
            test = p.dataset.test[: self.eval_pairs]
            by_split = {
                split: sample_pairs(reference, p.tokenizer, p.dataset, examples, self.pair_samples, p.sampling.params(), p.reward, self.pairs_per_prompt)
                for split, examples in (("train", train), ("test", test))
            }
        tokenized = {split: tokenize_pairs(p.tokenizer, p.dataset, pairs) for split, pairs in by_split.items()}
        for pairs in tokenized.values():
            add_reference_logprobs(reference, pairs)
        p.recorder.write_jsonl(CACHE_NAME, [tp.row(split) for split, pairs in tokenized.items() for tp in pairs])
        console.print(f"preference pairs: {', '.join(f'{len(v)} {k}' for k, v in tokenized.items())} -> {cache}")
        return tokenized

    def state(self) -> dict[str, Any]:
        return {"step_index": self.step_index, "summary": self._summary, "pool": self.pool.state()}

    def start(self) -> dict[str, Any] | None:
        if not self.evaluate_baseline:
            return None
        self._summary["baseline"] = self.evaluate("baseline")
        return {f"eval/{k}": v for k, v in self._summary["baseline"].items()}

    def step(self) -> dict[str, Any]:
        p, step = self.p, self.step_index
        start = time.perf_counter()
        batch = self.pool.take(min(p.training.batch_size, len(self.pool)))
        data = [d for tp in batch for d in tp.datums()]
        loss_fn = dpo_loss_fn([tp.ref_chosen for tp in batch], [tp.ref_rejected for tp in batch], [len(tp.chosen_T) for tp in batch],
                              [len(tp.rejected_T) for tp in batch], self.beta, self.variant)  # fmt: skip
        adam = p.optim.adam_params(step, self.total_steps)
        # Both requests go out before waiting: no idle round trip against the service.
        fwd = self.client.forward_backward_custom(data, loss_fn)
        opt = self.client.optim_step(adam)
        out, opt_out = fwd.result(), opt.result()
        metrics: dict[str, Any] = {k: v for k, v in out.metrics.items() if k.startswith("dpo/")}
        metrics.update({"train/pairs": len(batch), "pool/passes": self.pool.passes, "optim/lr": adam.learning_rate})
        metrics.update({f"optim/{k}": v for k, v in (opt_out.metrics or {}).items() if k != "learning_rate"})
        if step == self.total_steps - 1 or (p.training.eval_every and (step + 1) % p.training.eval_every == 0):
            self._summary["final"] = self.evaluate(f"step_{step + 1:06d}")
            metrics.update({f"eval/{k}": v for k, v in self._summary["final"].items()})
        self.step_index += 1
        metrics["time/step_s"] = time.perf_counter() - start
        return metrics

    def evaluate(self, name: str) -> dict[str, Any]:
        """Preference accuracy on held-out pairs, and the task's accuracy when the data set is graded."""
        metrics = self._preference_metrics(self.pairs.get("test", []))
        if self.p.evaluator is not None:
            metrics.update(evaluate_sampler(self.p, self.sampling_client(), name))
        return metrics

    def _preference_metrics(self, pairs: list[TokenizedPair]) -> dict[str, float]:
        import torch

        if not pairs:
            return {}
        data = [d for tp in pairs for d in tp.datums()]
        out = self.client.forward(data, "cross_entropy").result()
        sequence_D = sequence_logprobs(data, [o["logprobs"].to_torch() for o in out.loss_fn_outputs])
        chosen_P, rejected_P = sequence_D[0::2], sequence_D[1::2]
        ref_chosen_P = torch.tensor([tp.ref_chosen for tp in pairs])
        ref_rejected_P = torch.tensor([tp.ref_rejected for tp in pairs])
        margin_P = (chosen_P - ref_chosen_P) - (rejected_P - ref_rejected_P)
        return {
            "pref_accuracy": preference_accuracy(margin_P),  # the chosen reply gained on the rejected one
            "pref_margin": float(self.beta * margin_P.mean()),
            "pref_logprob_accuracy": float((chosen_P > rejected_P).float().mean()),  # the policy itself prefers chosen
        }

    def summary(self) -> dict[str, Any]:
        return {**self._summary, "steps": self.step_index}

    def finish(self) -> dict[str, Any]:
        if self.save_final:
            self._summary["checkpoint"] = self.save("final")["policy"]
        return self.summary()

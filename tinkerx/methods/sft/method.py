"""Supervised fine-tuning: cross-entropy on assistant tokens only, with validation loss and evaluation."""

from __future__ import annotations

import random
import time
from typing import Any

from tinkerx.backends.local.losses import LOSS_INPUTS
from tinkerx.chat import completion_tokens, prompt_tokens, supervised_datum
from tinkerx.conversation import conversation_datum, render_conversation
from tinkerx.errors import ConfigError
from tinkerx.methods.sft.overfit import OverfitWatch
from tinkerx.methods.sft.packing import pack_datums
from tinkerx.methods.shared.policy import OnePolicy, check_warm_start, open_policy, resume_policy
from tinkerx.pipeline import Pipeline, ResumeState
from tinkerx.runs.checkpoints import resolve_checkpoint
from tinkerx.runs.display import console
from tinkerx.runs.rng import restore_random_state


class SFT(OnePolicy):
    name = "sft"
    packs = True  # training.packing applies (build.py refuses it for methods without this)

    def __init__(
        self,
        loss_fn: str = "cross_entropy",
        validation_every: int = 25,
        validation_examples: int = 200,
        overfit_patience: int = 3,
        evaluate_baseline: bool = True,
        save_final: bool = True,
        init_from: str | None = None,
    ) -> None:
        if loss_fn != "cross_entropy":
            valid = "cross_entropy" if loss_fn in LOSS_INPUTS else ", ".join(LOSS_INPUTS)
            raise ConfigError(f"method.loss_fn {loss_fn!r} is not usable for sft; valid: {valid}")
        if validation_every < 0 or overfit_patience < 1:
            raise ConfigError("method.validation_every must be >= 0 and method.overfit_patience >= 1")
        self.loss_fn, self.validation_every, self.validation_examples = loss_fn, validation_every, validation_examples
        self.overfit_patience, self.evaluate_baseline, self.save_final = overfit_patience, evaluate_baseline, save_final
        self.init_from = resolve_checkpoint(init_from, "method.init_from") if init_from else None

    shown = ("train/loss", "val/loss", "optim/lr")

    def _datums(self, p: Pipeline, examples: list[Any]) -> list[Any]:
        if hasattr(p.dataset, "conversation"):  # dataset=chat: every (or the last) assistant reply of the conversation
            return [conversation_datum(render_conversation(p.tokenizer, p.dataset.conversation(ex), p.dataset.train_on)) for ex in examples]
        return [
            supervised_datum(prompt_tokens(p.tokenizer, p.dataset.messages(ex)), completion_tokens(p.tokenizer, p.dataset.completion(ex)))
            for ex in examples
        ]

    def setup(self, p: Pipeline, resume: ResumeState | None = None) -> None:
        self.p = p
        self.train = self._datums(p, p.dataset.train)
        self.validation = self._datums(p, p.dataset.validation[: self.validation_examples])
        if not self.train:
            raise ConfigError("dataset has no training examples")
        self.total_steps = p.training.total_steps(len(self.train))
        self.step_index = 0
        self._order_rng = random.Random(p.seed)
        self._order: list[int] = []
        self._watch = OverfitWatch(self.overfit_patience)
        self._summary: dict[str, Any] = {"init_from": self.init_from} if self.init_from else {}
        if resume is None:
            check_warm_start(p, self.init_from)
            self.client = open_policy(p, self.init_from)
            return
        self.client = resume_policy(p, resume.checkpoints["policy"])
        s = resume.method_state
        self.step_index, self._order, self._summary = s["step_index"], list(s["order"]), dict(s["summary"])
        self._order_rng.setstate(restore_random_state(s["order_rng"]))
        self._watch.load_state(s["overfit_watch"])

    def state(self) -> dict[str, Any]:
        return {
            "step_index": self.step_index,
            "order": list(self._order),
            "order_rng": self._order_rng.getstate(),
            "overfit_watch": self._watch.state(),
            "summary": self._summary,
        }

    def start(self) -> dict[str, Any] | None:
        if self.evaluate_baseline and self.p.evaluator is not None:
            self._summary["baseline"] = self.evaluate("baseline")
        return None

    def step(self) -> dict[str, Any]:
        p, step, total = self.p, self.step_index, self.total_steps
        start = time.perf_counter()
        if len(self._order) < p.training.batch_size:  # a new epoch: reshuffle, never repeat within one
            epoch = list(range(len(self.train)))
            self._order_rng.shuffle(epoch)
            self._order += epoch
        batch = [self.train[i] for i in self._order[: p.training.batch_size]]
        del self._order[: p.training.batch_size]
        adam = p.optim.adam_params(step, total)
        # Both requests go out before waiting, as against the service: no idle round trip.
        rows = self._packed(batch)
        fwd = self.client.forward_backward(rows, self.loss_fn)
        opt = self.client.optim_step(adam)
        out, opt_out = fwd.result(), opt.result()
        tokens = sum(sum(d.loss_fn_inputs["weights"].tolist()) for d in batch)
        metrics: dict[str, Any] = {
            "train/loss": out.metrics["loss:sum"] / max(tokens, 1.0),
            "train/tokens": tokens,
            **({"train/packed_rows": len(rows)} if p.training.packing else {}),
            "optim/lr": adam.learning_rate,
            **{f"optim/{k}": v for k, v in (opt_out.metrics or {}).items() if k != "learning_rate"},
        }
        last = step == total - 1
        if self.validation and self.validation_every and ((step + 1) % self.validation_every == 0 or last):
            metrics["val/loss"] = self._mean_loss(self.client, self.validation)
            warning = self._watch.update(metrics["train/loss"], metrics["val/loss"])
            if warning:
                metrics["val/overfitting"] = 1
                console.print(f"[yellow]warning:[/yellow] step {step + 1}: {warning}")
        if p.training.eval_every and (step + 1) % p.training.eval_every == 0 and not last and p.evaluator is not None:
            metrics.update({f"eval/{k}": v for k, v in self.evaluate(f"step_{step + 1:06d}").items()})
        self.step_index += 1
        metrics["time/step_s"] = time.perf_counter() - start
        return metrics

    def summary(self) -> dict[str, Any]:
        return {**self._summary, "steps": self.step_index, "overfitting_warnings": self._watch.warnings}

    def finish(self) -> dict[str, Any]:
        if self.p.evaluator is not None:
            self._summary["final"] = self.evaluate("final")
        if self.save_final:
            self._summary["checkpoint"] = self.save("final")["policy"]
        return self.summary()

    def _packed(self, data: list[Any]) -> list[Any]:
        """``data`` packed into fewer rows under ``training.packing``: the same loss, less padding."""
        training = self.p.training
        return pack_datums(data, training.packing_length) if training.packing else data

    def _mean_loss(self, client: Any, data: list[Any]) -> float:
        out = client.forward(self._packed(data), "cross_entropy").result()
        tokens = sum(sum(d.loss_fn_inputs["weights"].tolist()) for d in data)
        return out.metrics["loss:sum"] / max(tokens, 1.0)

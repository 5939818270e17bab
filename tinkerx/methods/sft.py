"""Supervised fine-tuning: cross-entropy on assistant tokens only, with validation loss and evaluation."""

from __future__ import annotations

import random
import time
from typing import Any

from tinkerx.backends.local.losses import LOSS_INPUTS
from tinkerx.chat import completion_tokens, prompt_tokens, supervised_datum
from tinkerx.errors import ConfigError
from tinkerx.pipeline import Pipeline
from tinkerx.runs.display import StepProgress, console


class SFT:
    name = "sft"

    def __init__(
        self,
        loss_fn: str = "cross_entropy",
        validation_every: int = 25,
        validation_examples: int = 200,
        overfit_patience: int = 3,
        evaluate_baseline: bool = True,
        save_final: bool = True,
    ) -> None:
        if loss_fn != "cross_entropy":
            valid = "cross_entropy" if loss_fn in LOSS_INPUTS else ", ".join(LOSS_INPUTS)
            raise ConfigError(f"method.loss_fn {loss_fn!r} is not usable for sft; valid: {valid}")
        if validation_every < 0 or overfit_patience < 1:
            raise ConfigError("method.validation_every must be >= 0 and method.overfit_patience >= 1")
        self.loss_fn, self.validation_every, self.validation_examples = loss_fn, validation_every, validation_examples
        self.overfit_patience, self.evaluate_baseline, self.save_final = overfit_patience, evaluate_baseline, save_final

    def _datums(self, p: Pipeline, examples: list[Any]) -> list[Any]:
        return [
            supervised_datum(prompt_tokens(p.tokenizer, p.dataset.messages(ex)), completion_tokens(p.tokenizer, p.dataset.completion(ex)))
            for ex in examples
        ]

    def run(self, p: Pipeline) -> dict[str, Any]:
        train = self._datums(p, p.dataset.train)
        validation = self._datums(p, p.dataset.validation[: self.validation_examples])
        if not train:
            raise ConfigError("dataset has no training examples")
        client = p.service.create_lora_training_client(p.base_model, rank=p.lora_rank, seed=p.seed).result()
        summary: dict[str, Any] = {}
        if self.evaluate_baseline and p.evaluator is not None:
            summary["baseline"] = self._evaluate(p, client, "baseline")

        total = p.training.total_steps(len(train))
        order_rng = random.Random(p.seed)
        order: list[int] = []
        watch = OverfitWatch(self.overfit_patience)
        with StepProgress(total, "sft", show=("train/loss", "val/loss", "optim/lr")) as bar:
            for step in range(total):
                start = time.perf_counter()
                if len(order) < p.training.batch_size:  # a new epoch: reshuffle, never repeat within one
                    epoch = list(range(len(train)))
                    order_rng.shuffle(epoch)
                    order += epoch
                batch = [train[i] for i in order[: p.training.batch_size]]
                del order[: p.training.batch_size]
                adam = p.optim.adam_params(step, total)
                # Both requests go out before waiting, as against the service: no idle round trip.
                fwd = client.forward_backward(batch, self.loss_fn)
                opt = client.optim_step(adam)
                out, opt_out = fwd.result(), opt.result()
                tokens = sum(sum(d.loss_fn_inputs["weights"].tolist()) for d in batch)
                metrics: dict[str, Any] = {
                    "train/loss": out.metrics["loss:sum"] / max(tokens, 1.0),
                    "train/tokens": tokens,
                    "optim/lr": adam.learning_rate,
                    **{f"optim/{k}": v for k, v in (opt_out.metrics or {}).items() if k != "learning_rate"},
                }
                last = step == total - 1
                if validation and self.validation_every and ((step + 1) % self.validation_every == 0 or last):
                    metrics["val/loss"] = self._mean_loss(client, validation)
                    warning = watch.update(metrics["train/loss"], metrics["val/loss"])
                    if warning:
                        metrics["val/overfitting"] = 1
                        console.print(f"[yellow]warning:[/yellow] step {step + 1}: {warning}")
                if p.training.eval_every and (step + 1) % p.training.eval_every == 0 and not last and p.evaluator is not None:
                    metrics.update({f"eval/{k}": v for k, v in self._evaluate(p, client, f"step_{step + 1:06d}").items()})
                if p.training.save_every and (step + 1) % p.training.save_every == 0:
                    client.save_state(f"step_{step + 1:06d}").result()
                metrics["time/step_s"] = time.perf_counter() - start
                p.recorder.log_metrics(step + 1, metrics)
                bar.advance(metrics)

        if p.evaluator is not None:
            summary["final"] = self._evaluate(p, client, "final")
        if self.save_final:
            summary["checkpoint"] = client.save_state("final").result().path
        summary["steps"] = total
        summary["overfitting_warnings"] = watch.warnings
        return summary

    @staticmethod
    def _mean_loss(client: Any, data: list[Any]) -> float:
        out = client.forward(data, "cross_entropy").result()
        tokens = sum(sum(d.loss_fn_inputs["weights"].tolist()) for d in data)
        return out.metrics["loss:sum"] / max(tokens, 1.0)

    @staticmethod
    def _evaluate(p: Pipeline, client: Any, name: str) -> dict[str, float]:
        result = p.evaluator(client.save_weights_and_get_sampling_client().result())
        p.recorder.write_jsonl(f"eval/{name}.jsonl", result.records)
        return result.metrics


class OverfitWatch:
    """Flags overfitting: validation loss rising for ``patience`` checks while training loss falls."""

    def __init__(self, patience: int) -> None:
        self.patience, self.warnings = patience, 0
        self._train: list[float] = []
        self._val: list[float] = []

    def update(self, train_loss: float, val_loss: float) -> str | None:
        self._train.append(train_loss)
        self._val.append(val_loss)
        k = self.patience
        if len(self._val) <= k:
            return None
        val_rising = all(b > a for a, b in zip(self._val[-k - 1 : -1], self._val[-k:]))
        train_falling = self._train[-1] < self._train[-k - 1]
        if val_rising and train_falling:
            self.warnings += 1
            return f"validation loss rose {k} checks in a row ({self._val[-k - 1]:.4f} -> {self._val[-1]:.4f}) while training loss fell: overfitting"
        return None

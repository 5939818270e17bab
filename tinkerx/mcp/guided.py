"""The guided tools for the two methods an agent starts most: SFT on question/answer files and GRPO
on a verifiable reward, with named arguments instead of config overrides, and training calls that
report the figures each method is judged by. Mixed into ``TrainingSession``, whose ``start_run`` /
``train_step`` they specialise (same lifecycle, same replay)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from tinkerx.errors import ConfigError, UserError
from tinkerx.mcp import reports
from tinkerx.mcp.config import reward_choice

Progress = Callable[[int, int, dict[str, Any]], None]  # (done, total, the step's metrics)
StopRequested = Callable[[], bool]


class GuidedTools:
    """Needs the session's ``overrides``, ``_start``, ``_active``, ``_train``, ``_position`` and ``_checkpoint_path``."""

    def init_sft(
        self,
        examples_path: str,
        validation_split: float = 0.1,
        holdout_path: str | None = None,
        lr: float | None = None,
        lr_schedule: str | None = None,
        warmup_steps: int | None = None,
        lora_rank: int | None = None,
        batch_size: int | None = None,
        max_steps: int | None = None,
        validation_every: int | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Start a supervised fine-tuning run (replaces any run in progress) and measure the baseline.

        examples_path: a .jsonl file, one {"question": ..., "answer": ...} per line (answer = the
        reply to learn), or conversations ({"messages": [...]}, ShareGPT, prompt/completion lists; then
        the held-out NLL replaces accuracy). validation_split: the fraction held out for validation loss. holdout_path:
        a .jsonl file for evaluate(); without it 100 examples (at most a quarter) are held out.
        lr / lr_schedule (constant | linear | cosine) / warmup_steps / batch_size / max_steps (the
        schedule's length) / lora_rank default to the method's and model's config. Returns data
        sizes, the baseline held-out accuracy and the run folder.
        """
        if not 0 < validation_split < 0.5:
            raise ConfigError(f"validation_split must be in (0, 0.5), got {validation_split}")
        values = {
            "dataset.path": _existing(examples_path, "examples_path"),
            "dataset.test_path": _existing(holdout_path, "holdout_path") if holdout_path else None,
            "dataset.validation_size": max(1, int(validation_split * _count_lines(examples_path))),
            "optim.lr": lr, "optim.schedule": lr_schedule, "optim.warmup_steps": warmup_steps,
            "model.lora_rank": lora_rank, "training.batch_size": batch_size, "training.max_steps": max_steps,
            "method.validation_every": validation_every, "sampling.max_tokens": max_tokens, "seed": seed,
        }  # fmt: skip
        # A conversations file (messages, ShareGPT, prompt/completion lists): dataset=chat, scored by held-out NLL.
        chat = ["dataset=chat", "~reward"] if _holds_conversations(examples_path) else ["dataset=jsonl"]
        return self._start([*self.overrides, "method=sft", *chat], values)

    def init_grpo(
        self,
        prompts_path: str,
        reward: str = "numeric",
        group_size: int | None = None,
        groups_per_batch: int | None = None,
        lr: float | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        holdout_path: str | None = None,
        init_from: str | None = None,
        max_steps: int | None = None,
        eval_every: int | None = None,
        checkpoint_threshold: float | None = None,
        checkpoint_min_steps: int | None = None,
        lora_rank: int | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Start a GRPO run on verifiable rewards (replaces any run in progress).

        prompts_path: a .jsonl file of {"question": ..., "answer": ...} (answer = the ground truth
        the reward checks). reward: a built-in name (numeric, exact_match, math_equivalence,
        multiple_choice) or the path of a .py file defining compute_reward(completion,
        ground_truth) -> float; it is tried on a few examples first and a broken one is refused
        (the run in progress stays). group_size: samples per prompt; groups_per_batch: prompts per
        iteration. init_from: a checkpoint name from save(), a checkpoint path, or tinker://...
        (e.g. the SFT weights). eval_every: holdout evaluation every N iterations; with
        checkpoint_threshold, a checkpoint is saved whenever the holdout reward reaches it (not
        before checkpoint_min_steps).
        """
        reward_groups, reward_values = reward_choice(reward)
        values = {
            "dataset.path": _existing(prompts_path, "prompts_path"),
            "dataset.test_path": _existing(holdout_path, "holdout_path") if holdout_path else None,
            **reward_values,
            "method.group_size": group_size, "training.batch_size": groups_per_batch, "optim.lr": lr,
            "sampling.max_tokens": max_tokens, "sampling.temperature": temperature,
            "method.init_from": self._checkpoint_path(init_from) if init_from else None,
            "training.max_steps": max_steps, "training.eval_every": eval_every,
            "method.checkpoint_threshold": checkpoint_threshold, "method.checkpoint_min_steps": checkpoint_min_steps,
            "model.lora_rank": lora_rank, "seed": seed,
        }  # fmt: skip
        return self._start([*self.overrides, "method=grpo", "dataset=jsonl", *reward_groups], values)

    def train_sft_step(self, steps: int | None = None, epochs: float | None = None, progress: Progress | None = None, stop: StopRequested | None = None) -> dict[str, Any]:
        """Train the SFT run for `steps` optimizer steps, or `epochs` passes over the data.

        Returns first/last train loss, the latest validation loss (and its recent history), the LR
        and overfitting_warning (non-null: stop, or go back to a checkpoint).
        """
        run = self._active("sft")
        if (steps is None) == (epochs is None):
            raise ConfigError("give exactly one of steps or epochs")
        if epochs is not None:
            steps = math.ceil(epochs * len(run.pipeline.dataset.train) / run.pipeline.training.batch_size)
        rows = self._train(run, "train_sft_step", steps, progress, stop)
        return {**self._position(run, rows, steps), **reports.sft(rows, run.pipeline.recorder.history)}

    def train_grpo_step(self, iterations: int = 1, progress: Progress | None = None, stop: StopRequested | None = None) -> dict[str, Any]:
        """Run `iterations` GRPO iterations (sample groups, grade, update).

        Per iteration: reward_mean / reward_std, accuracy, all_0 / all_1 (groups with no signal),
        truncation_rate, datums_trained, and holdout figures when one was due; plus update counts
        and the automatic checkpoints.
        """
        run = self._active("grpo")
        rows = self._train(run, "train_grpo_step", iterations, progress, stop)
        return {**self._position(run, rows, iterations), **reports.grpo(rows, run.method.summary(), run.method.saved_checkpoints())}


def _existing(path: str, argument: str) -> str:
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(f"{argument}: no file at {file}")
    return str(file)


def _holds_conversations(path: str) -> bool:
    from tinkerx.data.chat import ConversationReader

    with Path(path).expanduser().open(encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "{}")
    try:
        record = json.loads(first)
        return isinstance(record, dict) and bool(ConversationReader().detect(record, path))
    except (json.JSONDecodeError, UserError):
        return False


def _count_lines(path: str) -> int:
    with Path(path).expanduser().open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())

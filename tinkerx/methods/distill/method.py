"""Distillation from a teacher model: ``method=distill method.mode=on_policy|off_policy``.

- ``off_policy``: the teacher samples completions for the training prompts (optionally keeping only
  those the reward marks correct), cached in ``teacher_samples.jsonl``; the student is fine-tuned
  on them (see ``methods/distill/off_policy.py``).
- ``on_policy``: the student samples, the teacher scores each sampled token, and the per-token
  reverse KL is descended with the ``importance_sampling`` loss (``methods/distill/on_policy.py``).

The teacher is ``components.teacher`` (``methods/distill/teacher.py``): a model config, a
checkpoint, or both, served by the run's backend beside the student.
"""

from __future__ import annotations

from typing import Any

from tinkerx.errors import ConfigError
from tinkerx.methods.distill.off_policy import OffPolicyDistill
from tinkerx.methods.distill.on_policy import OnPolicyDistill
from tinkerx.methods.sft import SFT
from tinkerx.runs.checkpoints import resolve_checkpoint

MODES = ("on_policy", "off_policy")


def distill(
    mode: str = "on_policy",
    group_size: int = 4,
    groups_per_batch: int = 16,
    kl_coef: float = 1.0,
    discount: float = 0.0,
    reward_coef: float = 0.0,
    advantage_clip: float | None = None,
    init_from: str | None = None,
    teacher_samples: int = 1,
    filter_correct: bool = True,
    max_prompts: int | None = None,
    samples_path: str | None = None,
    context_length: int | None = None,
    validation_every: int = 25,
    validation_examples: int = 200,
    evaluate_teacher: bool = True,
    evaluate_baseline: bool = True,
    save_final: bool = True,
) -> Any:
    """The distillation method for ``mode``, its options checked before anything is loaded."""
    if mode not in MODES:
        raise ConfigError(f"method.mode {mode!r} is not a distillation mode; valid: {', '.join(MODES)}")
    if mode == "off_policy":
        if teacher_samples < 1:
            raise ConfigError(f"method.teacher_samples must be >= 1, got {teacher_samples}")
        if max_prompts is not None and max_prompts < 1:
            raise ConfigError(f"method.max_prompts must be >= 1 or null, got {max_prompts}")
        # The student: a fresh model, or init_from's weights (SFT's own warm start).
        sft = SFT(validation_every=validation_every, validation_examples=validation_examples, evaluate_baseline=evaluate_baseline,
                  save_final=save_final, init_from=init_from)
        return OffPolicyDistill(teacher_samples, filter_correct, max_prompts, samples_path, evaluate_teacher, sft, context_length)
    if group_size < 1 or groups_per_batch < 1:
        raise ConfigError(f"method.group_size and method.groups_per_batch must be >= 1, got {group_size} and {groups_per_batch}")
    if kl_coef <= 0 or not 0.0 <= discount <= 1.0 or reward_coef < 0:
        raise ConfigError(f"need method.kl_coef > 0, 0 <= method.discount <= 1, method.reward_coef >= 0; got {kl_coef}, {discount}, {reward_coef}")
    if advantage_clip is not None and advantage_clip <= 0:
        raise ConfigError(f"method.advantage_clip must be > 0 or null, got {advantage_clip}")
    init_from = resolve_checkpoint(init_from, "method.init_from") if init_from else None
    return OnPolicyDistill(group_size, groups_per_batch, kl_coef, discount, reward_coef, advantage_clip, init_from, evaluate_teacher, evaluate_baseline, save_final)

"""The teacher: a frozen model (a base model, or a saved checkpoint) served by the run's backend.

It is a component (``components.teacher`` in ``conf/method/distill.yaml``), built like the debate
judge: with a model config of its own (``+model@components.teacher.model=NAME``) it exposes a
``model_loader`` that ``build`` loads into the backend beside the student's; with ``checkpoint``
it is a trained checkpoint (a run folder or a checkpoint path) loaded through the same service.
Either way the teacher is a sampling client: it samples (off-policy) or scores the student's
tokens with ``compute_logprobs`` (on-policy), and is never trained.
"""

from __future__ import annotations

from typing import Any, Mapping

from tinkerx.data.lengths import GENERATE, Need, check_prompts, record
from tinkerx.errors import ConfigError
from tinkerx.methods.shared.policy import policy_sampler, resolved
from tinkerx.runs.checkpoints import checkpoint_base_model, load_weights, resolve_checkpoint


class Teacher:
    def __init__(self, model: Mapping[str, Any] | None = None, checkpoint: str | None = None) -> None:
        if model is not None and ("loader" not in model or "base_model" not in model):
            raise ConfigError("components.teacher.model must be null or a model config (base_model, loader): +model@components.teacher.model=NAME")
        self.model_loader = model["loader"] if model is not None else None
        self.base_model = str(model["base_model"]) if model is not None else None
        # A teacher of its own model has its own context: its prompts are checked against it (off-policy).
        self.context_length = int(model["context_length"]) if model is not None and model.get("context_length") else None
        self.checkpoint = resolve_checkpoint(str(checkpoint), "components.teacher.checkpoint") if checkpoint else None
        self.client: Any = None
        self.tokenizer: Any = None

    def start(self, service: Any, student_base_model: str, student_tokenizer: Any, same_tokenizer: bool) -> None:
        """Load the teacher; with ``same_tokenizer``, fail unless it tokenizes exactly like the student."""
        base_model = self.base_model or student_base_model
        trained_from = checkpoint_base_model(self.checkpoint) if self.checkpoint else None
        if trained_from and trained_from != base_model:
            raise ConfigError(
                f"components.teacher.checkpoint was trained from {trained_from}, but the teacher's model is {base_model}; "
                "give its model with +model@components.teacher.model=NAME"
            )
        self.tokenizer = self.model_loader.load_tokenizer() if self.model_loader is not None else student_tokenizer
        if same_tokenizer:
            check_same_tokenizer(self.tokenizer, student_tokenizer, base_model, student_base_model)
        # The run's evaluator phrases prompts with the student's tokenizer: it can grade the teacher only if they agree.
        self.shares_tokenizer = self.tokenizer is student_tokenizer or same_vocabulary(self.tokenizer, student_tokenizer)
        if self.checkpoint:
            # A training client loaded from the checkpoint hands out a sampling client of its weights,
            # on the local backend and on Tinker alike (a state path is not a sampler path there).
            trainer = load_weights(service, self.checkpoint, "components.teacher.checkpoint")
            self.client = policy_sampler(trainer)
        else:
            self.client = resolved(service.create_sampling_client(base_model=base_model))
        self.name = self.checkpoint or base_model


def check_same_tokenizer(teacher: Any, student: Any, teacher_name: str, student_name: str) -> None:
    """On-policy distillation compares logprobs of the same token ids: the vocabularies must be equal."""
    if teacher is student or same_vocabulary(teacher, student):
        return
    t_vocab, s_vocab = teacher.get_vocab(), student.get_vocab()
    differing = len(set(t_vocab.items()) ^ set(s_vocab.items()))
    raise ConfigError(
        f"teacher {teacher_name} and student {student_name} use different tokenizers (vocab {len(t_vocab)} vs {len(s_vocab)}, "
        f"{differing} entries differ): method.mode=on_policy scores the student's tokens with the teacher, so pick a teacher "
        "of the student's family, or use method.mode=off_policy"
    )


def same_vocabulary(a: Any, b: Any) -> bool:
    return a.get_vocab() == b.get_vocab() and a.eos_token_id == b.eos_token_id


def teacher_of(p: Any) -> Teacher:
    """The run's teacher component, checked to be something other than the student's own base model."""
    teacher = p.components.get("teacher")
    if teacher is None:
        raise ConfigError("method=distill needs a teacher: components.teacher (set in conf/method/distill.yaml)")
    if teacher.model_loader is None and teacher.checkpoint is None:
        raise ConfigError(
            "components.teacher names no model: give components.teacher.checkpoint=RUN_OR_CHECKPOINT "
            "or +model@components.teacher.model=NAME"
        )
    return teacher


def prompts_fitting_teacher(p: Any, teacher: Teacher, examples: list[Any], log: bool = True) -> list[Any]:
    """The prompts whose teacher-tokenized length plus ``sampling.max_tokens`` fits the teacher's own
    context, by ``dataset.overlong`` (counted under ``overlong_teacher``; at step 0 when ``log``).
    ``build`` checked them against the student's; a teacher of another model may tokenize differently
    (off-policy) or have a shorter context (both modes)."""
    if teacher.context_length is None or not hasattr(p.dataset, "overlong"):
        return examples
    need = Need(GENERATE, p.sampling.max_tokens, "sampling.max_tokens")
    kept, report = check_prompts(p.dataset, teacher.tokenizer, examples, need, teacher.context_length, "components.teacher.model.context_length", "teacher_prompts")
    record(p.recorder, {"teacher_prompts": report}, "overlong_teacher", log=log)
    return kept

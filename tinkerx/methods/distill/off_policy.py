"""Off-policy distillation: the teacher samples completions once, the student is fine-tuned on them.

The teacher's samples (optionally only those the reward marks correct: rejection sampling) are
cached in ``teacher_samples.jsonl``; training is the project's SFT recipe on them, so the student
gets the same validation loss, overfitting watch, evaluation and resume as any SFT run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tinkerx.data.lengths import REPLY, Need, apply_length_rule, record, token_limit
from tinkerx.errors import ConfigError
from tinkerx.methods.distill.samples import CACHE_NAME, TeacherTaught, read_samples, sample_teacher
from tinkerx.methods.distill.teacher import prompts_fitting_teacher, teacher_of
from tinkerx.methods.sft import SFT
from tinkerx.methods.shared.policy import evaluate_sampler
from tinkerx.pipeline import Pipeline, ResumeState
from tinkerx.runs.display import console


class OffPolicyDistill:
    name = "distill"
    shown = ("train/loss", "val/loss", "optim/lr")

    def __init__(self, teacher_samples: int, filter_correct: bool, max_prompts: int | None, samples_path: str | None,
                 evaluate_teacher: bool, sft: SFT, context_length: int | None = None) -> None:  # fmt: skip
        self.teacher_samples, self.filter_correct, self.max_prompts = teacher_samples, filter_correct, max_prompts
        self.samples_path, self.evaluate_teacher, self.sft = samples_path, evaluate_teacher, sft
        self.context_length = context_length  # the student's (model.context_length)

    # Before the student's SFT is set up (the teacher's checks failed, the teacher is sampling) no step has run:
    # a run that stops there must be reported by its own error, not by a missing attribute.
    @property
    def step_index(self) -> int:
        return getattr(self.sft, "step_index", 0)

    @property
    def total_steps(self) -> int:
        return getattr(self.sft, "total_steps", 0)

    def setup(self, p: Pipeline, resume: ResumeState | None = None) -> None:
        if self.filter_correct and p.reward is None:
            raise ConfigError("method.filter_correct=true needs a reward to tell correct samples: choose one with reward=NAME")
        self.teacher = teacher_of(p)
        # Completions are decoded to text and re-tokenized for the student: any tokenizer will do.
        self.teacher.start(p.service, p.base_model, p.tokenizer, same_tokenizer=False)
        self.p = p
        rows = self._samples(p)
        if not rows:
            raise ConfigError("the teacher produced no usable samples (none correct?): check its accuracy, or set method.filter_correct=false")
        self._teacher_summary: dict[str, Any] = {"source": self.teacher.name, "samples": len(rows)}
        sft_resume = None
        if resume is not None:
            self._teacher_summary = dict(resume.method_state["teacher"])
            sft_resume = dataclasses.replace(resume, method_state=resume.method_state["sft"])
        self.sft.setup(dataclasses.replace(p, dataset=self._fitting_student(p, TeacherTaught(p.dataset, rows), fresh=resume is None)), sft_resume)

    def _samples(self, p: Pipeline) -> list[dict[str, Any]]:
        cache = p.run_dir / CACHE_NAME
        source = Path(self.samples_path).expanduser() if self.samples_path else cache
        if source.is_file() or self.samples_path:
            rows = read_samples(source)
            if source != cache:
                p.recorder.write_jsonl(CACHE_NAME, rows)  # the run folder holds what it trained on
            console.print(f"teacher samples: {len(rows)} read from {source}")
            return rows
        examples = p.dataset.train[: self.max_prompts] if self.max_prompts else p.dataset.train
        examples = prompts_fitting_teacher(p, self.teacher, examples)
        rows = sample_teacher(self.teacher, p.dataset, examples, self.teacher_samples, p.sampling.params(), p.reward, self.filter_correct)
        p.recorder.write_jsonl(CACHE_NAME, rows)
        console.print(f"teacher samples: kept {len(rows)} of {len(examples) * self.teacher_samples} -> {cache}")
        return rows

    def _fitting_student(self, p: Pipeline, taught: TeacherTaught, fresh: bool) -> TeacherTaught:
        """The teacher's text re-tokenized for the student can be longer than the student's budget that
        ``build`` checked (prompt + ``sampling.max_tokens``): prompt + teacher reply against the student's
        context (or ``dataset.max_length``), by ``dataset.overlong``. Counted once, on the first start."""
        limit = token_limit(self.context_length, p.dataset.max_length) if hasattr(p.dataset, "overlong") else None
        if limit is None:
            return taught
        report = apply_length_rule(taught, p.tokenizer, {"train": Need(REPLY)}, *limit)
        report.splits = {"teacher_replies": report.splits["train"]}
        report.limit_metric = "data/teacher_replies_token_limit"
        record(p.recorder, {"teacher_replies": report}, "overlong_teacher_replies", log=fresh)
        return taught

    def state(self) -> dict[str, Any]:
        return {"sft": self.sft.state(), "teacher": self._teacher_summary}

    def start(self) -> dict[str, Any] | None:
        metrics: dict[str, Any] = {"teacher/samples": self._teacher_summary["samples"]}
        if self.evaluate_teacher and self.p.evaluator is not None and self.teacher.shares_tokenizer:
            self._teacher_summary.update(evaluate_sampler(self.p, self.teacher.client, "teacher"))
            metrics["teacher/accuracy"] = self._teacher_summary["accuracy"]
        self.sft.start()
        return metrics

    def step(self) -> dict[str, Any]:
        return self.sft.step()

    def evaluate(self, name: str) -> dict[str, Any]:
        return self.sft.evaluate(name)

    def save(self, name: str) -> dict[str, str]:
        return self.sft.save(name)

    def sampling_client(self) -> Any:
        return self.sft.sampling_client()

    def load(self, path: str, with_optimizer: bool = False) -> None:
        self.sft.load(path, with_optimizer)

    def saved_checkpoints(self) -> list[dict[str, Any]]:
        return self.sft.saved_checkpoints()

    def summary(self) -> dict[str, Any]:
        return {**self.sft.summary(), "teacher": self._teacher_summary}

    def finish(self) -> dict[str, Any]:
        return {**self.sft.finish(), "teacher": self._teacher_summary}

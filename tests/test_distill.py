"""Distillation: per-token advantages against an independent torch computation, the teacher's checks,
options, and on-/off-policy learning end to end on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers.data import ONE_DIGIT, write_starts_with_digit
from tests.helpers.runs import metrics_without_time, metrics_without_time_or_usage, run_in_process
from tests.helpers.tinker_server import tinker_cli
from tinkerx.errors import ConfigError
from tinkerx.methods.distill import distill
from tinkerx.methods.distill.advantages import reverse_kl_advantages, token_advantage_datum
from tinkerx.methods.distill.off_policy import OffPolicyDistill
from tinkerx.methods.distill.on_policy import OnPolicyDistill
from tinkerx.methods.distill.teacher import Teacher
from tinkerx.models.tiny import TinyModel


@pytest.mark.parametrize("kl_coef, discount", [(1.0, 0.0), (0.5, 0.9), (2.0, 1.0)])
def test_advantages_are_discounted_teacher_minus_student(kl_coef, discount):
    torch.manual_seed(1)
    student_T, teacher_T = -torch.rand(6), -2 * torch.rand(6)
    # Independently: A = G r with G[t, k] = discount^(k - t) for k >= t, r = kl_coef * (teacher - student).
    t = torch.arange(6)
    powers = (t[None, :] - t[:, None]).clamp(min=0).double()
    G = torch.where(t[None, :] >= t[:, None], torch.tensor(discount, dtype=torch.float64) ** powers, torch.zeros((), dtype=torch.float64))
    want = G @ (kl_coef * (teacher_T - student_T)).double()
    got = reverse_kl_advantages(student_T.tolist(), teacher_T.tolist(), kl_coef, discount)
    assert got == pytest.approx(want.tolist(), abs=1e-6)


def test_advantage_clip_bounds_each_token_before_discounting():
    student_T, teacher_T = [-0.5, -1.0, -0.1], [-0.1, -15.0, -0.2]  # the middle token: the teacher would never say it
    assert reverse_kl_advantages(student_T, teacher_T, clip=2.0) == pytest.approx([0.4, -2.0, -0.1])
    assert reverse_kl_advantages(student_T, teacher_T, discount=1.0, clip=2.0) == pytest.approx([-1.7, -2.1, -0.1])
    assert reverse_kl_advantages(student_T, teacher_T)[1] == pytest.approx(-14.0)  # null: the plain estimate
    with pytest.raises(ConfigError, match="advantage_clip must be > 0"):
        distill(advantage_clip=0)


def test_importance_sampling_on_the_advantages_descends_the_reverse_kl():
    """At ratio 1, the loss's gradient is the gradient of sum_t (student_t - teacher_t) * student_t's
    log-ratio: the score-function gradient of KL(student || teacher)."""
    from tinkerx.backends.local.losses import importance_sampling

    student_T, teacher_T = torch.tensor([-0.5, -1.0, -2.0]), torch.tensor([-0.1, -3.0, -2.0])
    datum = token_advantage_datum([1, 2], [7, 8, 9], student_T.tolist(), reverse_kl_advantages(student_T.tolist(), teacher_T.tolist()))
    inputs = {k: v.to_torch().float() for k, v in datum.loss_fn_inputs.items() if k != "target_tokens"}
    logprobs = torch.cat([torch.zeros(1), student_T]).requires_grad_(True)  # one prompt position, then the completion
    importance_sampling(logprobs, inputs, {}).backward()
    assert logprobs.grad.tolist() == pytest.approx([0.0, *(student_T - teacher_T).tolist()], abs=1e-6)
    assert datum.model_input.to_ints() == [1, 2, 7, 8] and datum.loss_fn_inputs["target_tokens"].tolist() == [2, 7, 8, 9]


class _OtherTokenizerModel(TinyModel):
    def load_tokenizer(self):
        tokenizer = super().load_tokenizer()
        tokenizer.add_tokens(["<|think|>"])
        return tokenizer


def test_tokenizer_mismatch_is_one_clear_error():
    student = TinyModel()
    teacher = Teacher(model={"base_model": "other/model", "loader": _OtherTokenizerModel(base_model="other/model")})
    with pytest.raises(ConfigError, match=r"teacher other/model and student tinkerx/tiny use different tokenizers \(vocab 261 vs 260"):
        teacher.start(service=None, student_base_model="tinkerx/tiny", student_tokenizer=student.load_tokenizer(), same_tokenizer=True)


@pytest.mark.parametrize(
    "teacher_kwargs, message",
    [({"checkpoint": "/nonexistent/run"}, "components.teacher.checkpoint: no checkpoint at /nonexistent/run"),
     ({"model": {"base_model": "x"}}, "components.teacher.model must be null or a model config")],
)  # fmt: skip
def test_teacher_rejects_what_cannot_load(teacher_kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Teacher(**teacher_kwargs)


def test_a_folder_that_is_no_checkpoint_is_one_line_naming_the_key(tiny_service, tmp_path):
    # The path exists, so it passes the config check; loading it is what fails, as one ConfigError.
    (tmp_path / "notes.txt").write_text("not weights")
    teacher = Teacher(checkpoint=str(tmp_path))
    with pytest.raises(ConfigError, match=rf"^components.teacher.checkpoint: cannot load {tmp_path}: FileNotFoundError: not a tinkerx checkpoint"):
        teacher.start(tiny_service, "tinkerx/tiny", TinyModel().load_tokenizer(), same_tokenizer=True)


def test_distill_modes_and_bad_options():
    assert isinstance(distill(mode="on_policy"), OnPolicyDistill)
    assert isinstance(distill(mode="off_policy"), OffPolicyDistill)
    with pytest.raises(ConfigError, match="valid: on_policy, off_policy"):
        distill(mode="online")
    with pytest.raises(ConfigError, match="kl_coef > 0"):
        distill(kl_coef=0)
    with pytest.raises(ConfigError, match="no checkpoint at /nonexistent/run"):
        distill(mode="off_policy", init_from="/nonexistent/run")  # a warm-started student: SFT's init_from


# --- end to end ---------------------------------------------------------------------------------
# The task: reply with a digit first (a python reward). The teacher is a few SFT steps on one-digit
# addition (it answers with digits); an untrained student almost never starts with a digit.


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("teacher") / "sft"
    run_in_process(["training.max_steps=12", "training.batch_size=32", "optim.warmup_steps=0", "method.validation_every=0",
          "method.evaluate_baseline=false", *ONE_DIGIT], run_dir)  # fmt: skip
    return run_dir


def _distill_args(teacher_run: Path, folder: Path, *extra: str) -> list[str]:
    return ["method=distill", f"components.teacher.checkpoint={teacher_run}", "reward=python", f"reward.path={write_starts_with_digit(folder)}",
            "training.eval_every=0", *ONE_DIGIT, *extra]  # fmt: skip


def test_on_policy_distillation_pulls_the_student_towards_the_teacher(teacher_run, tmp_path):
    # From an untrained student a few steps cannot yet move greedy accuracy (experiment=distill_tiny_arithmetic_on_policy
    # shows that, from a warm start); what they must move is the per-token reverse KL to the teacher.
    summary = run_in_process(_distill_args(teacher_run, tmp_path, "training.max_steps=10", "training.batch_size=8", "optim.lr=3e-3"), tmp_path / "run")
    assert summary["teacher"]["accuracy"] >= 0.8, summary["teacher"]  # the ceiling, measured once
    kl = [r["distill/reverse_kl"] for r in metrics_without_time(tmp_path / "run") if "distill/reverse_kl" in r]
    assert len(kl) == 10 and sum(kl[-3:]) / 3 < 0.85 * sum(kl[:3]) / 3, kl


def test_on_policy_distillation_resumes_exactly(teacher_run, tmp_path):
    args = _distill_args(teacher_run, tmp_path, "training.max_steps=4", "training.batch_size=2", "method.group_size=2", "training.save_every=2",
                         "evaluator.max_examples=4", "method.evaluate_teacher=false", "optim.lr=3e-3")  # fmt: skip
    run_in_process(args, tmp_path / "a")
    run_in_process(args, tmp_path / "b")
    run_in_process(args, tmp_path / "b", resume=True)  # from the step-2 point: steps 3-4 again
    assert metrics_without_time(tmp_path / "b") == metrics_without_time(tmp_path / "a")


def test_off_policy_distillation_trains_a_fresh_student_on_cached_teacher_samples(teacher_run, tmp_path):
    args = _distill_args(teacher_run, tmp_path, "method.mode=off_policy", "method.teacher_samples=2", "method.validation_every=0",
                         "training.max_steps=8", "training.batch_size=16", "optim.lr=3e-3")  # fmt: skip
    summary = run_in_process(args, tmp_path / "a")
    assert summary["final"]["accuracy"] >= summary["baseline"]["accuracy"] + 0.4, summary
    cached = (tmp_path / "a" / "teacher_samples.jsonl").read_text().splitlines()
    assert len(cached) == summary["teacher"]["samples"] > 0
    assert all(json.loads(line)["reward"] == 1.0 for line in cached)  # filter_correct: only what the reward accepts
    # Another run reuses the cache instead of sampling the teacher: same data, same training.
    run_in_process([*args, f"method.samples_path={tmp_path / 'a' / 'teacher_samples.jsonl'}"], tmp_path / "b")
    assert (tmp_path / "b" / "teacher_samples.jsonl").read_text().splitlines() == cached
    # Run b reused a's teacher samples: the same training, without the teacher's tokens.
    assert metrics_without_time_or_usage(tmp_path / "b")[1:] == metrics_without_time_or_usage(tmp_path / "a")[1:]


@pytest.mark.slow
def test_reproduce_of_a_distill_run_matches_line_for_line(teacher_run, tmp_path):
    from tests.conftest import run_cli

    args = _distill_args(teacher_run, tmp_path, "training.max_steps=3", "training.batch_size=4", "method.group_size=2", "evaluator.max_examples=8",
                         "training.eval_every=2", "optim.lr=3e-3")  # fmt: skip
    result = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"])
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_cli([str(tmp_path / "run"), f"hydra.run.dir={tmp_path / 'again'}"], module="tinkerx.reproduce")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "matches the original line for line" in result.stderr
    assert metrics_without_time(tmp_path / "again") == metrics_without_time(tmp_path / "run") and len(metrics_without_time(tmp_path / "run")) == 4
    again, original = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("again", "run"))
    assert again["final"] == original["final"] and again["teacher"] == original["teacher"]


@pytest.mark.slow
def test_on_policy_distillation_through_the_sdk(tinker_server, tmp_path):
    # The teacher is a second model of the run served by the same server (here the untrained base):
    # the student samples through the SDK, the teacher's compute_logprobs scores its tokens.
    summary = tinker_cli(["method=distill", "+model@components.teacher.model=tiny", "training.max_steps=2", "training.batch_size=2",
                          "method.group_size=2", "evaluator.max_examples=4", "training.eval_every=0"], tmp_path / "run", tinker_server)  # fmt: skip
    assert summary["checkpoint"].startswith("tinker://") and summary["steps"] == 2
    rows = [r for r in metrics_without_time(tmp_path / "run") if "distill/reverse_kl" in r]
    assert len(rows) == 2 and all(abs(r["distill/reverse_kl"]) < 1e-3 for r in rows[:1])  # same weights: no divergence at the start


def test_compare_plot_puts_runs_on_a_cumulative_cost_axis(tmp_path):
    from tinkerx.plot_compare import against_cost, plot_compare

    rows = [{"step": 0, "eval/accuracy": 0.1}, {"step": 1, "sample/tokens": 100}, {"step": 2, "sample/tokens": 50, "eval/accuracy": 0.5}]
    assert against_cost(rows, "eval/accuracy", "sample/tokens") == ([0.0, 150.0], [0.1, 0.5])
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [{**rows[0], "teacher/accuracy": 0.9}, *rows[1:]]))
    out = plot_compare([run], tmp_path / "compare.png", ceiling="teacher/accuracy")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_off_policy_distillation_through_the_sdk(tinker_server, tmp_path):
    # The teacher (a second model on the same server) samples through the SDK; a fresh student is
    # fine-tuned on its text. An untrained teacher is rarely correct, so nothing is filtered here.
    summary = tinker_cli(["method=distill", "method.mode=off_policy", "+model@components.teacher.model=tiny", "method.filter_correct=false",
                          "method.max_prompts=16", "method.teacher_samples=2", "method.validation_every=0", "training.max_steps=3",
                          "training.batch_size=8", "optim.lr=3e-3", "evaluator.max_examples=4", "training.eval_every=0"], tmp_path / "run", tinker_server)  # fmt: skip
    assert summary["checkpoint"].startswith("tinker://") and summary["steps"] == 3
    cached = [json.loads(line) for line in (tmp_path / "run" / "teacher_samples.jsonl").read_text().splitlines()]
    assert len(cached) == summary["teacher"]["samples"] == 32 and len({r["id"] for r in cached}) == 16
    losses = [r["train/loss"] for r in metrics_without_time(tmp_path / "run") if "train/loss" in r]
    assert len(losses) == 3 and losses[-1] < losses[0]  # the student learns the teacher's text

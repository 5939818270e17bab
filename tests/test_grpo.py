"""GRPO: advantages, no-signal groups, the prompt pool, datums, metrics, config, and learning end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate

from tests.helpers.compose import compose
from tests.helpers.data import EASY
from tests.helpers.runs import metrics_rows, run_in_process
from tinkerx.errors import ConfigError
from tinkerx.methods.grpo import GRPO
from tinkerx.methods.shared.advantages import ALL_0, ALL_1, FLAT, SIGNAL, group_advantages, group_kind
from tinkerx.methods.shared.rollout_metrics import rollout_metrics, sampler_trainer_kl
from tinkerx.methods.shared.pool import PromptPool
from tinkerx.methods.shared.rollouts import Group, Sample, rl_datum

# --- advantages and no-signal groups ------------------------------------------------------------


def test_advantages_are_reward_minus_group_mean():
    assert group_advantages([1.0, 0.0, 0.0, 1.0]) == [0.5, -0.5, -0.5, 0.5]
    assert group_advantages([1.0, 0.0, 0.0, 0.0]) == [0.75, -0.25, -0.25, -0.25]
    assert sum(group_advantages([0.3, 0.9, 0.1])) == pytest.approx(0.0)


def test_advantages_divided_by_group_std():
    assert group_advantages([1.0, 0.0, 0.0, 1.0], normalize_std=True) == pytest.approx([1.0, -1.0, -1.0, 1.0], abs=1e-5)
    # A flat group stays at zero instead of dividing by zero.
    assert group_advantages([1.0, 1.0], normalize_std=True) == [0.0, 0.0]


@pytest.mark.parametrize(
    "rewards, kind",
    [([0.0, 0.0, 0.0], ALL_0), ([1.0, 1.0], ALL_1), ([0.5, 0.5], FLAT), ([0.0, 1.0, 0.0], SIGNAL), ([0.2, 0.3], SIGNAL)],
)
def test_group_kinds(rewards, kind):
    assert group_kind(rewards) == kind


# --- prompt pool --------------------------------------------------------------------------------


def test_pool_uses_every_prompt_once_before_repeating():
    pool = PromptPool(list(range(10)), seed=3)
    first = pool.take(4) + pool.take(4) + pool.take(2)
    assert sorted(first) == list(range(10))
    assert pool.passes == 1
    second = pool.take(5) + pool.take(5)
    assert sorted(second) == list(range(10)) and second != first  # a new shuffle each pass
    assert pool.passes == 2


def test_pool_never_repeats_within_a_batch_across_a_pass_boundary():
    pool = PromptPool(list(range(5)), seed=0)
    for _ in range(50):
        batch = pool.take(4)
        assert len(set(batch)) == 4


def test_pool_is_seeded():
    assert PromptPool(list(range(20)), 7).take(12) == PromptPool(list(range(20)), 7).take(12)
    assert PromptPool(list(range(20)), 7).take(12) != PromptPool(list(range(20)), 8).take(12)


# --- datums and metrics -------------------------------------------------------------------------


def test_rl_datum_shifts_by_one_and_zeroes_prompt_positions():
    sample = Sample(tokens_T=[7, 8], logprobs_T=[-0.1, -0.2], stop_reason="stop", text="", advantage=0.5)
    datum = rl_datum([1, 2, 3], sample)
    assert datum.model_input.to_ints() == [1, 2, 3, 7]
    inputs = {k: v.tolist() for k, v in datum.loss_fn_inputs.items()}
    assert inputs["target_tokens"] == [2, 3, 7, 8]
    assert inputs["logprobs"] == pytest.approx([0.0, 0.0, -0.1, -0.2])
    assert inputs["advantages"] == [0.0, 0.0, 0.5, 0.5]


def _group(rewards, lengths=None, stops=None) -> Group:
    lengths = lengths or [2] * len(rewards)
    stops = stops or ["stop"] * len(rewards)
    samples = [Sample([5] * n, [-1.0] * n, s, "x", reward=r) for r, n, s in zip(rewards, lengths, stops)]
    return Group(example=None, prompt_T=[1, 2, 3], samples=samples)


def test_rollout_metrics():
    groups = [_group([1.0, 0.0], lengths=[2, 4], stops=["stop", "length"]), _group([0.0, 0.0]), _group([1.0, 1.0]), _group([0.5, 0.5])]
    m = rollout_metrics(groups)
    assert m["reward/mean"] == pytest.approx(4.0 / 8)
    assert m["reward/accuracy"] == pytest.approx(5 / 8)  # 0.5 counts as correct, like the evaluator
    assert (m["groups/signal"], m["groups/no_signal"], m["groups/all_0"], m["groups/all_1"]) == (1, 3, 1, 1)
    assert m["sample/completion_tokens"] == pytest.approx(18 / 8)
    assert m["sample/truncation_rate"] == pytest.approx(1 / 8)
    assert m["sample/tokens"] == 8 * 3 + 18


def test_sampler_trainer_kl_reads_completion_positions_only():
    import torch

    g = _group([1.0, 0.0])
    trained = [(g, s) for s in g.samples]
    # Trainer logprobs: 2 prompt positions (anything) then the completion's.
    same = [torch.tensor([-9.0, -9.0, -1.0, -1.0])] * 2
    assert sampler_trainer_kl(trained, same) == 0.0
    shifted = [torch.tensor([0.0, 0.0, -1.5, -1.5])] * 2
    assert sampler_trainer_kl(trained, shifted) == pytest.approx(0.5)


# --- config -------------------------------------------------------------------------------------


def test_grpo_config_composes_and_builds():
    cfg = compose(["method=grpo", "training.batch_size=5", "method.loss_fn=ppo"])
    method = instantiate(cfg.method)
    assert isinstance(method, GRPO)
    assert method.groups_per_batch == 5  # follows the shared training.batch_size
    assert method.loss_fn == "ppo"
    assert cfg.optim.schedule == "constant" and cfg.optim.warmup_steps == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss_fn": "cross_entropy"}, "not usable for grpo"),
        ({"loss_fn": "bogus"}, "valid: importance_sampling, ppo"),
        ({"group_size": 1}, "group_size"),
        ({"groups_per_batch": 0}, "groups_per_batch"),
        ({"init_from": "/nonexistent/run"}, "no checkpoint at /nonexistent/run"),
    ],
)
def test_grpo_rejects_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        GRPO(**kwargs)


# --- end to end ---------------------------------------------------------------------------------



def test_grpo_run_writes_metrics_samples_and_is_reproducible(tmp_path):
    overrides = ["method=grpo", "training.max_steps=3", "training.batch_size=4", "method.group_size=4", "training.eval_every=2",
                 "evaluator.max_examples=10", "method.samples_per_step=2", "method.checkpoint_threshold=0.0", *EASY]
    summary = run_in_process(overrides, tmp_path / "a")
    rows = metrics_rows(tmp_path / "a")
    assert [r["step"] for r in rows] == [0, 1, 2, 3]  # 0 = the baseline evaluation
    for key in ("reward/mean", "reward/std", "reward/accuracy", "groups/no_signal", "groups/all_0", "groups/all_1",
                "sample/completion_tokens", "sample/truncation_rate", "sample/tokens", "reward/errors",
                "time/sample_s", "time/reward_s", "time/train_s"):
        assert key in rows[1], key
    assert "eval/accuracy" in rows[2] and "eval/accuracy" in rows[3]
    assert summary["auto_checkpoints"] and Path(summary["auto_checkpoints"][0]["path"]).is_dir()
    samples = [json.loads(line) for line in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 * 2 and len(samples[0]["samples"]) == 4
    # Same seed, same numbers: everything but wall-clock time.
    run_in_process(overrides, tmp_path / "b")
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rs]  # noqa: E731
    assert strip(metrics_rows(tmp_path / "b")) == strip(rows)


def test_grpo_warm_start_samples_from_the_checkpoint(tmp_path):
    few = ["evaluator.max_examples=8", *EASY]
    run_in_process(["training.max_steps=5", "method.validation_every=0", *few], tmp_path / "sft")
    summary = run_in_process(["method=grpo", f"method.init_from={tmp_path / 'sft'}", "training.max_steps=1", "training.batch_size=2",
                       "method.group_size=2", *few], tmp_path / "grpo")
    assert summary["init_from"] == json.loads((tmp_path / "sft" / "summary.json").read_text())["checkpoint"]
    completions = lambda path: [json.loads(line)["completion"] for line in path.read_text().splitlines()]  # noqa: E731
    # Greedy answers of the GRPO run before any step are the SFT run's final answers: same weights.
    assert completions(tmp_path / "grpo" / "eval" / "baseline.jsonl") == completions(tmp_path / "sft" / "eval" / "final.jsonl")


def test_grpo_trains_with_ppo_and_its_clip_config(tmp_path):
    coin = tmp_path / "ascii_first.py"  # about half of a random model's first bytes are ASCII: signal in most groups
    coin.write_text("def compute_reward(completion, ground_truth):\n    return float(completion.encode()[:1] < b'\\x80')\n")
    run_in_process(["method=grpo", "method.loss_fn=ppo", "method.loss_fn_config={clip_low_threshold: 0.9, clip_high_threshold: 1.1}",
             "reward=python", f"reward.path={coin}", "training.max_steps=2", "training.batch_size=4", "method.group_size=4",
             "method.evaluate_baseline=false", "evaluator.max_examples=4", "sampling.max_tokens=2"], tmp_path / "run")
    trained = [r for r in metrics_rows(tmp_path / "run") if r.get("train/datums")]
    assert trained and all(abs(r["train/kl_sampler_trainer"]) < 1e-4 for r in trained)  # on-policy: ratios start at 1


@pytest.mark.slow
def test_grpo_raises_the_reward_of_the_tiny_model(tmp_path):
    # An easy task a randomly initialised model already solves now and then (its first token is a
    # digit about 4% of the time), so GRPO has signal from the first step and no SFT is needed.
    reward = tmp_path / "starts_with_digit.py"
    reward.write_text("def compute_reward(completion, ground_truth):\n    return float(completion[:1].isdigit())\n")
    run_in_process(["method=grpo", "reward=python", f"reward.path={reward}", "training.max_steps=20", "training.batch_size=16",
             "method.group_size=8", "optim.lr=1e-3", "method.evaluate_baseline=false", "training.eval_every=0",
             "evaluator.max_examples=10", "sampling.max_tokens=2"], tmp_path / "run")
    rewards = [r["reward/mean"] for r in metrics_rows(tmp_path / "run") if "reward/mean" in r]
    start, end = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert end > start + 0.15, (start, end)


def test_plots_draw_metrics_and_summary_evaluations(tmp_path):
    from tinkerx.plots import plot, read_metrics

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward/mean": s / 10}) + "\n" for s in (1, 2, 3)))
    (run / "summary.json").write_text(json.dumps({"steps": 3, "baseline": {"accuracy": 0.1}, "final": {"accuracy": 0.4}}))
    rows = read_metrics(run)
    assert [(r["step"], r.get("eval/accuracy")) for r in rows] == [(0, 0.1), (1, None), (2, None), (3, 0.4)]
    out = plot([run], tmp_path / "docs" / "curve.png", keys=["eval/accuracy", "reward/mean", "absent/key"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_grpo_through_the_sdk_makes_no_deprecated_sdk_call(tinker_server, tmp_path, monkeypatch):
    from tests.helpers.tinker_server import tinker_cli

    # The SDK hands out sampling clients as futures; using the future as the client is deprecated (a
    # FutureWarning on every call). As errors in the run's process, any such use fails the run. The KL
    # penalty adds the base model's sampler; the holdout evaluation samples the policy through the SDK.
    monkeypatch.setenv("PYTHONWARNINGS", "error::FutureWarning")
    summary = tinker_cli(["method=grpo", "method.kl_coef=0.01", "training.max_steps=2", "training.batch_size=2", "method.group_size=2",
                          "evaluator.max_examples=4", "training.eval_every=0"], tmp_path / "run", tinker_server)  # fmt: skip
    assert summary["steps"] == 2 and "accuracy" in summary["final"] and summary["checkpoint"].startswith("tinker://")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]

"""GRPO variants: presets -> switches, each aggregation / KL / overlong rule against an independent
torch computation of the paper's objective, dynamic sampling, and every preset end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import compose
from tinkerx.backends.local.losses import LOSSES
from tinkerx.errors import ConfigError
from tinkerx.methods.shared.advantages import overlong_penalty
from tinkerx.methods.grpo.dynamic_sampling import draw_with_signal, signal_groups
from tinkerx.methods.grpo.objective import policy_datums, trainable
from tinkerx.methods.shared.rollouts import Group, Sample
from tinkerx.methods.grpo.variants import SWITCHES, resolve_recipe

VARIANTS = ("grpo", "dr_grpo", "dapo", "gspo", "cispo")


def presets() -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose(["method=grpo"]).method.variants)


def recipe(variant=None, **explicit):
    return resolve_recipe(variant, presets(), explicit)


# --- presets -> switches ------------------------------------------------------------------------


def test_every_preset_sets_only_known_switches_and_base_sets_all():
    rows = presets()
    assert set(rows["base"]) == set(SWITCHES)
    assert set(VARIANTS) <= set(rows)
    for name in VARIANTS:
        r = recipe(name)
        assert r.loss_fn in ("ppo", "gspo", "cispo")


def test_papers_switches():
    assert recipe("grpo").aggregation == "sequence_mean" and recipe("grpo").normalize_std and recipe("grpo").kl_coef > 0
    assert recipe("dr_grpo").aggregation == "constant" and not recipe("dr_grpo").normalize_std
    dapo = recipe("dapo")
    assert dapo.clip_high > dapo.clip_low and dapo.dynamic_sampling and dapo.overlong == "soft" and dapo.aggregation == "token_mean"
    assert recipe("gspo").loss_fn == "gspo" and recipe("cispo").loss_fn == "cispo"
    assert recipe("dapo").loss_fn_config() == pytest.approx({"clip_low_threshold": 0.8, "clip_high_threshold": 1.28})


def test_explicit_switch_wins_over_the_preset_and_base_fills_the_rest():
    r = recipe("dapo", clip_high=0.35, kl_coef=None)
    assert r.clip_high == 0.35 and r.kl_coef == 0.0 and r.aggregation == "token_mean"
    plain = recipe()
    assert (plain.loss_fn, plain.aggregation, plain.normalize_std) == ("importance_sampling", "sum", False)
    assert recipe(None, loss_fn="ppo").loss_fn_config() == pytest.approx({"clip_low_threshold": 0.8, "clip_high_threshold": 1.2})


@pytest.mark.parametrize(
    "variant, explicit, message",
    [("ppo2", {}, "method.variant 'ppo2' is unknown; valid: grpo"), (None, {"aggregation": "mean"}, "method.aggregation 'mean'"),
     (None, {"loss_fn": "cross_entropy"}, "not usable for grpo"), (None, {"overlong": "cut"}, "valid: keep, filter, soft"),
     (None, {"kl_coef": -1.0}, "method.kl_coef")],
)
def test_bad_switches_are_one_line_config_errors(variant, explicit, message):
    with pytest.raises(ConfigError, match=message):
        recipe(variant, **explicit)


# --- objectives against independent computations ------------------------------------------------


def _batch(seed=0):
    """Two groups of three, varied completion lengths; rewards with signal in both groups."""
    g = torch.Generator().manual_seed(seed)
    groups = []
    for gi, rewards in enumerate(([1.0, 0.0, 0.0], [0.0, 1.0, 1.0])):
        samples = []
        for si, r in enumerate(rewards):
            n = 2 + (gi * 3 + si) % 4
            samples.append(Sample(tokens_T=[5 + si] * n, logprobs_T=(-torch.rand(n, generator=g)).tolist(), stop_reason="stop", text="", reward=r))
        groups.append(Group(example=None, prompt_T=[1, 2, 3], samples=samples))
    return groups


def _set_advantages(groups, normalize_std):
    from tinkerx.methods.shared.advantages import group_advantages

    for grp in groups:
        for s, a in zip(grp.samples, group_advantages(grp.rewards_G, normalize_std)):
            s.advantage = a


def _batch_loss(datums, learner_T, loss_fn, config):
    """Sum of the per-datum Tinker losses with the learner's logprobs (prompt positions: 0)."""
    total = 0.0
    for d, lp in zip(datums, learner_T):
        inputs = {k: v.to_torch().float() for k, v in d.loss_fn_inputs.items() if k != "target_tokens"}
        n_prompt = inputs["advantages"].shape[0] - lp.shape[0]
        total = total + LOSSES[loss_fn](torch.cat([torch.zeros(n_prompt), lp]), inputs, config)
    return total


@pytest.mark.parametrize("variant", ["grpo", "dr_grpo", "dapo"])
def test_ppo_aggregations_match_the_papers_objectives(variant):
    r = recipe(variant, kl_coef=0.0)
    groups = _batch()
    _set_advantages(groups, r.normalize_std)
    trained = trainable(groups, r)
    max_tokens = 8
    g = torch.Generator().manual_seed(1)
    learner = [torch.tensor(s.logprobs_T) + (torch.rand(len(s.logprobs_T), generator=g) - 0.5) * 0.6 for _, s in trained]
    learner = [lp.requires_grad_(True) for lp in learner]
    got = _batch_loss(policy_datums(trained, r, max_tokens), learner, r.loss_fn, r.loss_fn_config())
    got.backward()
    got_grads = [lp.grad.clone() for lp in learner]

    # Independent: the per-token clipped surrogate, then each paper's reduction written out.
    lo, hi = 1 - r.clip_low, 1 + r.clip_high
    ref = [lp.detach().clone().requires_grad_(True) for lp in learner]
    per_seq = []
    for (_, s), lp in zip(trained, ref):
        ratio = torch.exp(lp - torch.tensor(s.logprobs_T))
        per_seq.append(torch.minimum(ratio * s.advantage, ratio.clamp(lo, hi) * s.advantage))
    if r.aggregation == "sequence_mean":
        expected = -torch.stack([t.mean() for t in per_seq]).mean()
    elif r.aggregation == "token_mean":
        expected = -torch.cat(per_seq).mean()
    else:  # constant: Dr. GRPO divides each sequence's sum by the generation budget
        expected = -torch.stack([t.sum() / max_tokens for t in per_seq]).mean()
    expected.backward()
    assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-4, abs=1e-7)  # float32 inputs
    for a, b in zip(got_grads, ref):
        assert torch.allclose(a, b.grad, rtol=1e-4, atol=1e-6)


def test_gspo_and_cispo_presets_match_their_objectives():
    groups = _batch(2)
    for variant in ("gspo", "cispo"):
        r = recipe(variant)
        _set_advantages(groups, r.normalize_std)
        trained = trainable(groups, r)
        g = torch.Generator().manual_seed(3)
        learner = [torch.tensor(s.logprobs_T) + (torch.rand(len(s.logprobs_T), generator=g) - 0.5) * 1e-3 for _, s in trained]
        got = float(_batch_loss(policy_datums(trained, r, 8), learner, r.loss_fn, r.loss_fn_config()))
        terms = []
        for (_, s), lp in zip(trained, learner):
            q = torch.tensor(s.logprobs_T)
            if variant == "gspo":  # one geometric-mean ratio per sequence, clipped, mean over tokens, mean over sequences
                sr = torch.exp((lp - q).mean())
                terms.append(torch.minimum(sr * s.advantage, sr.clamp(1 - r.clip_low, 1 + r.clip_high) * s.advantage))
            else:  # sum over tokens of sg(clip(ratio)) * logp * A, divided by all tokens of the batch
                terms.append((torch.exp(lp - q).clamp(max=1 + r.clip_high) * lp * s.advantage).sum())
        total_tokens = sum(len(s.tokens_T) for _, s in trained)
        expected = -float(torch.stack(terms).mean()) if variant == "gspo" else -float(torch.stack(terms).sum()) / total_tokens
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-6), variant  # float32 datums; terms cancel to ~1e-4


def test_kl_penalty_pushes_toward_the_reference():
    r = recipe(None, aggregation="sum", kl_coef=0.5)
    groups = _batch(4)
    _set_advantages(groups, False)
    trained = trainable(groups, r)
    reference = [[q - 0.3 for q in s.logprobs_T] for _, s in trained]  # the sampler likes its tokens more than the base
    datums = policy_datums(trained, r, 8, reference)
    for d, (_, s) in zip(datums, trained):
        adv = d.loss_fn_inputs["advantages"].tolist()[-len(s.tokens_T):]
        assert adv == pytest.approx([s.advantage - 0.5 * 0.3] * len(s.tokens_T), abs=1e-6)


def test_overlong_soft_penalty_and_filter():
    assert [overlong_penalty(n, 100, 0.2) for n in (50, 80, 90, 100)] == pytest.approx([0.0, 0.0, -0.5, -1.0])
    groups = _batch()
    groups[0].samples[1].stop_reason = "length"
    _set_advantages(groups, False)
    assert len(trainable(groups, recipe(None, overlong="filter"))) == len(trainable(groups, recipe())) - 1


def test_dynamic_sampling_draws_until_enough_groups_have_signal_with_a_cap():
    def make(kind_signal):
        return Group(example=None, prompt_T=[1], samples=[Sample([1], [0.0], "stop", "", reward=r) for r in ((0.0, 1.0) if kind_signal else (1.0, 1.0))])

    stream = iter([True, False, False, True, False, True, True, True])
    calls = []

    def draw(n):
        calls.append(n)
        return [make(next(stream)) for _ in range(n)]

    groups, rounds = draw_with_signal(draw, wanted=3, max_rounds=5)
    assert calls == [3, 2, 1] and rounds == 2 and len(signal_groups(groups, 3)) == 3
    capped, rounds = draw_with_signal(lambda n: [make(False) for _ in range(n)], wanted=2, max_rounds=2)
    assert rounds == 2 and len(capped) == 6 and signal_groups(capped, 2) == []


# --- every preset end to end --------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_trains_end_to_end_on_the_tiny_model(tmp_path, variant):
    from tinkerx.app import run

    coin = tmp_path / "ascii_first.py"  # about half of a random model's first bytes are ASCII: signal in most groups
    coin.write_text("def compute_reward(completion, ground_truth):\n    return float(completion.encode()[:1] < b'\\x80')\n")
    summary = run(compose([
        "method=grpo", f"method.variant={variant}", "reward=python", f"reward.path={coin}", "training.max_steps=2",
        "training.batch_size=3", "method.group_size=4", "method.evaluate_baseline=false", "training.eval_every=0",
        "evaluator.max_examples=2", "sampling.max_tokens=3", "method.save_final=false"]), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if r.get("train/datums")]
    assert summary["updates"] >= 1 and trained
    assert all(abs(r["train/kl_sampler_trainer"]) < 1e-4 for r in trained)  # on-policy: the step starts at ratio 1
    if variant == "grpo":  # KL to the frozen base: zero before the first update, then the policy has moved
        assert trained[0]["train/kl_reference"] == pytest.approx(0.0, abs=1e-4)
    if variant == "dapo":
        assert all("sample/extra_draws" in r for r in rows if "reward/mean" in r)

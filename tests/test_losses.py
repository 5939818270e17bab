"""Tinker's built-in losses, each against an independent computation of its value and gradient.

The expected values are written from the SDK documentation's formulas in closed form (gradients
derived by hand), not by calling the implementation, so a sign or clipping slip shows up here.
"""

from __future__ import annotations

import math

import pytest
import torch

from tinkerx.backends.local.losses import LOSSES, check_loss_name


def _case(seed: int = 0, n: int = 12):
    g = torch.Generator().manual_seed(seed)
    sampler = -torch.rand(n, generator=g) * 2.0
    # Spread learner/sampler gaps widely so some ratios fall outside [0.8, 1.2] on both sides.
    learner = sampler + (torch.rand(n, generator=g) - 0.5) * 1.2
    advantages = torch.randn(n, generator=g)
    return learner, {"logprobs": sampler, "advantages": advantages}


def _value_and_grad(name: str, learner: torch.Tensor, inputs: dict, config: dict):
    lp = learner.clone().requires_grad_(True)
    loss = LOSSES[name](lp, inputs, config)
    loss.backward()
    return float(loss.detach()), lp.grad.tolist()


def _assert_same_value_and_grad(actual: tuple[float, list[float]], expected: tuple[float, list[float]]) -> None:
    # Value and gradient compared apart: pytest.approx refuses nested structures (pytest >= 9.2).
    (value, grad), (expected_value, expected_grad) = actual, expected
    assert value == pytest.approx(expected_value)
    assert grad == pytest.approx(expected_grad)


def test_cases_exercise_both_sides_of_the_clip():
    learner, inputs = _case()
    ratios = [math.exp(a - b) for a, b in zip(learner.tolist(), inputs["logprobs"].tolist())]
    assert any(r < 0.8 for r in ratios) and any(r > 1.2 for r in ratios) and any(0.8 <= r <= 1.2 for r in ratios)


def test_importance_sampling():
    learner, inputs = _case()
    value, grad = _value_and_grad("importance_sampling", learner, inputs, {})
    r = [math.exp(a - b) for a, b in zip(learner.tolist(), inputs["logprobs"].tolist())]
    adv = inputs["advantages"].tolist()
    assert value == pytest.approx(-sum(ri * ai for ri, ai in zip(r, adv)), rel=1e-5)
    assert grad == pytest.approx([-ri * ai for ri, ai in zip(r, adv)], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("low,high", [(0.8, 1.2), (0.9, 1.28)])
def test_ppo_clips_ratio_with_separate_low_and_high(low, high):
    learner, inputs = _case(1)
    value, grad = _value_and_grad("ppo", learner, inputs, {"clip_low_threshold": low, "clip_high_threshold": high})
    expected_value, expected_grad = 0.0, []
    for a, b, adv in zip(learner.tolist(), inputs["logprobs"].tolist(), inputs["advantages"].tolist()):
        r = math.exp(a - b)
        clipped = min(max(r, low), high)
        # min(r A, clip(r) A): the unclipped term wins unless clipping makes the objective smaller.
        if r * adv <= clipped * adv:
            expected_value -= r * adv
            expected_grad.append(-r * adv)
        else:
            expected_value -= clipped * adv
            expected_grad.append(0.0)
    assert value == pytest.approx(expected_value, rel=1e-5)
    assert grad == pytest.approx(expected_grad, rel=1e-5, abs=1e-6)
    assert any(gi == 0.0 for gi in grad), "some tokens should be clipped out of the gradient"


def test_cispo_keeps_a_gradient_on_clipped_tokens():
    learner, inputs = _case(2)
    value, grad = _value_and_grad("cispo", learner, inputs, {"clip_low_threshold": 0.0, "clip_high_threshold": 1.1})
    expected_value, expected_grad = 0.0, []
    for a, b, adv in zip(learner.tolist(), inputs["logprobs"].tolist(), inputs["advantages"].tolist()):
        w = min(math.exp(a - b), 1.1)
        expected_value -= w * a * adv
        expected_grad.append(-w * adv)
    assert value == pytest.approx(expected_value, rel=1e-5)
    assert grad == pytest.approx(expected_grad, rel=1e-5, abs=1e-6)
    assert all(gi != 0.0 for gi in grad)


def test_per_token_thresholds_from_loss_inputs_override_the_config():
    learner, inputs = _case(3)
    n = learner.shape[0]
    per_token = dict(inputs, clip_low_threshold=torch.full((n,), 0.95), clip_high_threshold=torch.full((n,), 1.05))
    _assert_same_value_and_grad(
        _value_and_grad("ppo", learner, per_token, {}),
        _value_and_grad("ppo", learner, inputs, {"clip_low_threshold": 0.95, "clip_high_threshold": 1.05}),
    )


def test_dro_quadratic_penalty():
    learner, inputs = _case(4)
    beta = 0.3
    value, grad = _value_and_grad("dro", learner, inputs, {"beta": beta})
    q, adv, lp = inputs["logprobs"].tolist(), inputs["advantages"].tolist(), learner.tolist()
    assert value == pytest.approx(-sum(a * x - 0.5 * beta * (a - b) ** 2 for a, b, x in zip(lp, q, adv)), rel=1e-5)
    assert grad == pytest.approx([-(x - beta * (a - b)) for a, b, x in zip(lp, q, adv)], rel=1e-5, abs=1e-6)


def test_gspo_uses_one_sequence_ratio_over_the_masked_tokens():
    learner, inputs = _case(5)
    n = learner.shape[0]
    mask = torch.tensor([0.0] * 4 + [1.0] * (n - 4))  # first 4 positions: prompt, outside the ratio
    adv = torch.tensor([0.0] * 4 + [0.7] * (n - 4))
    inputs = dict(inputs, advantages=adv, sequence_ratio_mask=mask)
    low, high = 0.97, 1.02
    value, grad = _value_and_grad("gspo", learner, inputs, {"clip_low_threshold": low, "clip_high_threshold": high})
    gaps = [a - b for a, b in zip(learner.tolist()[4:], inputs["logprobs"].tolist()[4:])]
    s = math.exp(sum(gaps) / len(gaps))  # geometric mean of the token ratios
    clipped = min(max(s, low), high)
    unclipped_wins = s * 0.7 <= clipped * 0.7
    per_token = s * 0.7 if unclipped_wins else clipped * 0.7
    assert value == pytest.approx(-per_token * (n - 4), rel=1e-5)
    # Each token's gradient is through its own log-probability only, scaled by s.
    assert grad == pytest.approx([0.0] * 4 + [(-s * 0.7 if unclipped_wins else 0.0)] * (n - 4), rel=1e-5, abs=1e-6)


def test_gspo_without_a_mask_takes_the_tokens_with_an_advantage():
    learner, inputs = _case(6)
    n = learner.shape[0]
    adv = torch.tensor([0.0] * 3 + [-0.5] * (n - 3))
    mask = torch.tensor([0.0] * 3 + [1.0] * (n - 3))
    with_mask = _value_and_grad("gspo", learner, dict(inputs, advantages=adv, sequence_ratio_mask=mask), {})
    _assert_same_value_and_grad(_value_and_grad("gspo", learner, dict(inputs, advantages=adv), {}), with_mask)


def test_stable_reinforce_is_refused_locally_with_the_reason():
    with pytest.raises(ValueError, match="stable_reinforce.*backend=tinker"):
        check_loss_name("stable_reinforce")
    with pytest.raises(ValueError, match="valid: cross_entropy"):
        check_loss_name("hinge")

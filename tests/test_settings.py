"""Validation of the shared hyperparameters and the learning-rate schedules."""

from __future__ import annotations

import math

import pytest

from tinkerx.errors import ConfigError
from tinkerx.settings import OptimSettings, SamplingSettings, TrainingSettings


@pytest.mark.parametrize(
    "factory,kwargs,message",
    [
        (OptimSettings, {"lr": 0}, "optim.lr must be > 0"),
        (OptimSettings, {"lr": -1e-3}, "optim.lr must be > 0"),
        (OptimSettings, {"schedule": "step"}, "optim.schedule must be one of constant, linear, cosine"),
        (SamplingSettings, {"max_tokens": 0}, "sampling.max_tokens must be >= 1"),
        (SamplingSettings, {"temperature": -0.1}, "sampling.temperature must be >= 0"),
        (SamplingSettings, {"top_p": 0}, "sampling.top_p"),
        (TrainingSettings, {"batch_size": 0}, "training.batch_size must be >= 1"),
        (TrainingSettings, {"max_steps": 0}, "training.max_steps must be >= 1"),
    ],
)
def test_invalid_values_are_rejected(factory, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        factory(**kwargs)


def test_warmup_then_cosine_to_zero():
    o = OptimSettings(lr=1.0, schedule="cosine", warmup_steps=4)
    assert [o.lr_at(s, 20) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert o.lr_at(4, 20) == pytest.approx(1.0)
    assert o.lr_at(12, 20) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert o.lr_at(20, 20) == pytest.approx(0.0)


def test_linear_with_explicit_horizon_and_floor():
    o = OptimSettings(lr=1.0, schedule="linear", horizon=10, min_lr_ratio=0.1)
    assert o.lr_at(0, 1000) == pytest.approx(1.0)
    assert o.lr_at(5, 1000) == pytest.approx(0.1 + 0.9 * 0.5)
    assert o.lr_at(50, 1000) == pytest.approx(0.1)  # held at the floor past the horizon


def test_warmup_only_on_fresh_runs():
    o = OptimSettings(lr=1.0, warmup_steps=10)
    assert o.lr_at(0, 100) == pytest.approx(0.1)
    assert o.lr_at(0, 100, fresh_run=False) == pytest.approx(1.0)


def test_adam_params_carry_every_setting():
    o = OptimSettings(lr=2e-3, beta1=0.8, beta2=0.9, eps=1e-6, weight_decay=0.1, grad_clip_norm=1.0)
    p = o.adam_params(0, 10)
    assert (p.learning_rate, p.beta1, p.beta2, p.eps, p.weight_decay, p.grad_clip_norm) == (2e-3, 0.8, 0.9, 1e-6, 0.1, 1.0)


def test_epochs_bound_steps():
    assert TrainingSettings(batch_size=10, max_steps=1000, epochs=2).total_steps(95) == 19
    assert TrainingSettings(batch_size=10, max_steps=5, epochs=2).total_steps(95) == 5


@pytest.mark.parametrize(
    "factory,kwargs,message",
    [
        (TrainingSettings, {"max_steps": 2.5}, "training.max_steps must be an integer, got 2.5"),
        (TrainingSettings, {"batch_size": True}, "training.batch_size must be an integer"),
        (TrainingSettings, {"epochs": "two"}, "training.epochs must be a number or null"),
        (OptimSettings, {"lr": "fast"}, "optim.lr must be a number, got 'fast'"),
        (SamplingSettings, {"max_tokens": 8.0}, "sampling.max_tokens must be an integer"),
    ],
)
def test_values_of_the_wrong_kind_are_rejected(factory, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        factory(**kwargs)


def test_numbers_of_the_right_kind_pass():
    assert TrainingSettings(max_steps=3, epochs=1).epochs == 1  # an int is a fine float
    assert OptimSettings(lr=1, horizon=None).lr == 1


def test_seed_must_be_an_integer():
    from tinkerx.settings import check_seed

    check_seed(7)
    for bad in ("abc", 1.5, True):
        with pytest.raises(ConfigError, match="seed must be an integer"):
            check_seed(bad)

"""SFT pieces: loss only on assistant tokens, and the overfitting warning."""

from __future__ import annotations

import json

import pytest

from tests.helpers.data import EASY
from tests.helpers.runs import run_in_process
from tinkerx.chat import completion_tokens, prompt_tokens, supervised_datum
from tinkerx.errors import ConfigError
from tinkerx.methods.sft import SFT, OverfitWatch
from tinkerx.models.tiny import TinyModel


def test_weights_cover_exactly_the_assistant_reply():
    tok = TinyModel().load_tokenizer()
    prompt = prompt_tokens(tok, [{"role": "system", "content": "be brief"}, {"role": "user", "content": "12+35="}])
    reply = completion_tokens(tok, "47")
    datum = supervised_datum(prompt, reply)
    weights = datum.loss_fn_inputs["weights"].tolist()
    targets = datum.loss_fn_inputs["target_tokens"].tolist()
    trained = [t for t, w in zip(targets, weights) if w > 0]
    assert trained == reply and tok.decode(trained) == "47<|im_end|>"
    assert datum.model_input.to_ints() == (prompt + reply)[:-1]
    assert sum(weights) == len(reply)


def test_overfit_warning_needs_rising_validation_and_falling_train_loss():
    watch = OverfitWatch(patience=2)
    assert watch.update(1.0, 1.0) is None
    assert watch.update(0.8, 1.1) is None
    warning = watch.update(0.6, 1.2)
    assert warning and "overfitting" in warning and watch.warnings == 1

    steady = OverfitWatch(patience=2)
    for train, val in [(1.0, 1.0), (0.8, 0.9), (0.6, 1.0), (0.5, 0.95)]:
        assert steady.update(train, val) is None
    both_rising = OverfitWatch(patience=2)
    for train, val in [(1.0, 1.0), (1.1, 1.1), (1.2, 1.2)]:
        assert both_rising.update(train, val) is None


def test_sft_continues_from_a_run_folder(tmp_path):
    """method.init_from: a second SFT stage starts from the first's final weights (its baseline is
    the first run's final answers), and a checkpoint of another base model is refused."""
    few = ["evaluator.max_examples=8", "method.validation_every=0", *EASY]
    run_in_process(["training.max_steps=5", *few], tmp_path / "first")
    summary = run_in_process(["training.max_steps=1", f"method.init_from={tmp_path / 'first'}", *few], tmp_path / "second")
    assert summary["init_from"] == json.loads((tmp_path / "first" / "summary.json").read_text())["checkpoint"]
    completions = lambda path: [json.loads(line)["completion"] for line in path.read_text().splitlines()]  # noqa: E731
    assert completions(tmp_path / "second" / "eval" / "baseline.jsonl") == completions(tmp_path / "first" / "eval" / "final.jsonl")
    with pytest.raises(ConfigError, match="no checkpoint at /nonexistent/run"):
        SFT(init_from="/nonexistent/run")

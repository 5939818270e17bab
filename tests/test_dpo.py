"""DPO: the losses and their gradients against hand-written formulas, the local custom-loss call,
preference data, bad input, and learning end to end on the tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tinker import types

from tests.helpers.compose import compose
from tests.helpers.data import ONE_DIGIT, write_starts_with_digit
from tests.helpers.runs import metrics_without_time, run_in_process
from tests.helpers.tinker_server import tinker_cli
from tinkerx.chat import supervised_datum
from tinkerx.errors import ConfigError, DataError
from tinkerx.methods.dpo import DPO
from tinkerx.methods.dpo.loss import dpo_loss_fn, preference_accuracy

BETA = 0.5


def _pair_batch():
    """Two pairs laid out chosen, rejected, chosen, rejected: per-token logprobs and completion masks."""
    prompt = [1, 2, 3]
    replies = [[4, 5], [6], [7, 8, 9], [4]]
    data = [supervised_datum(prompt, r) for r in replies]
    torch.manual_seed(0)
    logprobs = [(-torch.rand(d.model_input.length)).requires_grad_(True) for d in data]
    ref = {"chosen": [-1.0, -2.5], "rejected": [-0.4, -0.9]}
    return data, logprobs, ref, [len(r) for r in replies]


def _by_hand(data, logprobs, ref, lengths, variant):
    """The loss and d loss / d logprob_t per datum, from the formulas, with floats only."""
    seq = [float(sum(w * lp for w, lp in zip(d.loss_fn_inputs["weights"].tolist(), x.tolist()))) for d, x in zip(data, logprobs)]
    loss, grads = 0.0, []
    n = len(seq) // 2
    for i in range(n):
        rc, rr = seq[2 * i] - ref["chosen"][i], seq[2 * i + 1] - ref["rejected"][i]
        lc, lr = (lengths[2 * i], lengths[2 * i + 1]) if variant == "length_normalized" else (1, 1)
        h = rc / lc - rr / lr
        if variant == "ipo":
            loss += (h - 1 / (2 * BETA)) ** 2 / n
            dh = 2 * (h - 1 / (2 * BETA)) / n
        else:
            loss += math.log1p(math.exp(-BETA * h)) / n
            dh = -BETA / (1 + math.exp(BETA * h)) / n
        grads += [dh / lc, -dh / lr]  # d loss / d sequence logprob, chosen then rejected
    per_token = [[g * w for w in d.loss_fn_inputs["weights"].tolist()] for g, d in zip(grads, data)]
    return loss, per_token


@pytest.mark.parametrize("variant", ["sigmoid", "ipo", "length_normalized"])
def test_dpo_loss_and_gradients_match_the_formulas(variant):
    data, logprobs, ref, lengths = _pair_batch()
    fn = dpo_loss_fn(ref["chosen"], ref["rejected"], lengths[0::2], lengths[1::2], BETA, variant)
    loss, metrics = fn(data, logprobs)
    loss.backward()
    want_loss, want_grads = _by_hand(data, logprobs, ref, lengths, variant)
    assert loss.item() == pytest.approx(want_loss, rel=1e-5)
    for lp, want in zip(logprobs, want_grads):
        assert lp.grad.tolist() == pytest.approx(want, abs=1e-6)
    assert metrics["dpo/loss"] == pytest.approx(want_loss, rel=1e-5)
    assert set(metrics) >= {"dpo/reward_margin", "dpo/chosen_logprob", "dpo/rejected_logprob", "dpo/accuracy"}


def test_preference_accuracy_counts_ties_half():
    assert preference_accuracy(torch.tensor([1.0, -1.0, 0.0, 2.0])) == pytest.approx(0.625)


def test_local_forward_backward_custom_follows_the_sdk(tiny_service):
    """A custom loss equal to cross-entropy trains exactly like the built-in cross-entropy."""
    data = [supervised_datum([1, 2, 3], [40, 41, 42]), supervised_datum([5, 6], [43])]
    custom = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=3).result()
    builtin = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=3).result()

    def ce(batch, logprobs_list):
        loss = sum(-(d.loss_fn_inputs["weights"].to_torch() * lp).sum() for d, lp in zip(batch, logprobs_list))
        return loss, {"custom/metric": 1.5}

    out_custom = custom.forward_backward_custom(data, ce).result()
    out_builtin = builtin.forward_backward(data, "cross_entropy").result()
    assert out_custom.metrics["loss:sum"] == pytest.approx(out_builtin.metrics["loss:sum"], rel=1e-6)
    assert out_custom.metrics["custom/metric"] == 1.5
    adam = types.AdamParams(learning_rate=1e-2)
    custom.optim_step(adam).result(), builtin.optim_step(adam).result()
    after = [c.forward(data, "cross_entropy").result().metrics["loss:sum"] for c in (custom, builtin)]
    assert after[0] == pytest.approx(after[1], rel=1e-6) and after[0] < out_builtin.metrics["loss:sum"]


# --- data and config ----------------------------------------------------------------------------


def _write_pairs(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"{i}+1=", "chosen": str(i + 1), "rejected": "no"}) + "\n" for i in range(n)))
    return path


def test_preference_file_splits_and_missing_fields(tmp_path):
    from tinkerx.data.preference import PreferenceJsonl

    ds = PreferenceJsonl(str(_write_pairs(tmp_path / "p.jsonl", 20)), test_size=4)
    assert (len(ds.pairs["train"]), len(ds.pairs["test"])) == (16, 4)
    assert ds.train[0].answer == ds.pairs["train"][0].chosen  # SFT on the chosen replies works on the same file
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing field\(s\) rejected"):
        PreferenceJsonl(str(bad))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"variant": "hinge"}, "valid: sigmoid, ipo, length_normalized"), ({"beta": 0}, "beta must be > 0"),
     ({"pairs_from": "magic"}, "valid: dataset, sampling"), ({"init_from": "/nonexistent/run"}, "no checkpoint at /nonexistent/run")],
)  # fmt: skip
def test_dpo_rejects_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DPO(**kwargs)


def test_dpo_config_composes():
    from hydra.utils import instantiate

    cfg = compose(["method=dpo", "method.variant=ipo"])
    method = instantiate(cfg.method)
    assert isinstance(method, DPO) and method.variant == "ipo" and cfg.training.batch_size == 16


# --- end to end ---------------------------------------------------------------------------------

def test_dpo_on_a_preference_file_trains_and_resumes_exactly(tmp_path):
    pairs = _write_pairs(tmp_path / "pairs.jsonl", 24)
    args = ["method=dpo", "dataset=preference_jsonl", f"dataset.path={pairs}", "dataset.test_size=6", "~reward", "~evaluator",
            "training.max_steps=4", "training.batch_size=6", "training.save_every=2", "training.eval_every=0", "optim.lr=1e-3"]  # fmt: skip
    summary = run_in_process(args, tmp_path / "a")
    assert summary["pairs"] == {"train": 18, "test": 6}
    assert summary["baseline"]["pref_accuracy"] == 0.5  # policy == reference: every held-out pair a tie
    assert summary["final"]["pref_margin"] > 0
    # Resumed from its step-2 point, the run redoes steps 3-4 and ends with the same numbers.
    run_in_process(args, tmp_path / "b")
    run_in_process(args, tmp_path / "b", resume=True)
    assert metrics_without_time(tmp_path / "b") == metrics_without_time(tmp_path / "a")


def test_dpo_on_sampled_pairs_raises_held_out_preference_and_task_accuracy(tmp_path):
    # The task: reply with a digit first. A random tiny model does so ~4% of the time, so among 8
    # samples of a prompt there is often one correct and one incorrect reply: a pair.
    reward = ["reward=python", f"reward.path={write_starts_with_digit(tmp_path)}"]
    summary = run_in_process(["method=dpo", "method.pairs_from=sampling", "method.pair_samples=8", "training.max_steps=12", "training.batch_size=8",
                    "method.beta=0.5", "optim.lr=3e-3", "training.eval_every=0", *reward, *ONE_DIGIT], tmp_path / "run")  # fmt: skip
    assert summary["pairs"]["train"] >= 8 and summary["pairs"]["test"] >= 3, summary["pairs"]
    base, final = summary["baseline"], summary["final"]
    assert final["pref_accuracy"] >= base["pref_accuracy"] + 0.1, (base, final)
    assert final["accuracy"] > base["accuracy"] + 0.2, (base, final)
    assert (tmp_path / "run" / "pairs.jsonl").is_file()


# --- backend=tinker, against the local Tinker-compatible server ----------------------------------


@pytest.mark.slow
def test_dpo_through_the_sdk_uses_forward_backward_custom(tinker_server, tmp_path):
    pairs = _write_pairs(tmp_path / "pairs.jsonl", 12)
    summary = tinker_cli(["method=dpo", "dataset=preference_jsonl", f"dataset.path={pairs}", "dataset.test_size=3", "~reward", "~evaluator",
                          "training.max_steps=2", "training.batch_size=4", "training.eval_every=0"], tmp_path / "run", tinker_server)  # fmt: skip
    assert summary["checkpoint"].startswith("tinker://") and summary["steps"] == 2
    rows = metrics_without_time(tmp_path / "run")
    assert [r["step"] for r in rows] == [0, 1, 2] and rows[1]["dpo/loss"] == pytest.approx(math.log(2), rel=1e-4)  # policy == reference
    # The SDK's custom loss is a forward pass, then a weighted cross-entropy backward: both went to the server.
    traffic = (tmp_path / "run" / "http_traffic.yaml").read_text()
    assert "/api/v1/forward_backward" in traffic and "/api/v1/forward" in traffic


@pytest.mark.slow
def test_dpo_on_sampled_pairs_through_the_sdk(tinker_server, tmp_path):
    # Pairs made by sampling the starting model through the SDK, reference logprobs by its compute_logprobs.
    reward = ["reward=python", f"reward.path={write_starts_with_digit(tmp_path)}"]
    summary = tinker_cli(["method=dpo", "method.pairs_from=sampling", "method.pair_samples=8", "training.max_steps=2", "training.batch_size=4",
                          "training.eval_every=0", "method.beta=0.5", "method.max_prompts=40", *reward, *ONE_DIGIT, "evaluator.max_examples=8"],
                         tmp_path / "run", tinker_server)  # fmt: skip
    assert summary["checkpoint"].startswith("tinker://") and summary["steps"] == 2
    cached = [json.loads(line) for line in (tmp_path / "run" / "pairs.jsonl").read_text().splitlines()]
    assert summary["pairs"]["train"] >= 2 and len(cached) == summary["pairs"]["train"] + summary["pairs"].get("test", 0)
    assert all(r["chosen"][:1].isdigit() and not r["rejected"][:1].isdigit() for r in cached)  # correct paired with incorrect
    assert all(r["ref_chosen"] < 0 and r["ref_rejected"] < 0 for r in cached)  # the reference scored both replies
    rows = metrics_without_time(tmp_path / "run")
    assert rows[1]["dpo/loss"] == pytest.approx(math.log(2), rel=1e-4)  # policy == reference at the first step
    assert summary["baseline"]["pref_accuracy"] == 0.5 and "accuracy" in summary["final"]

"""``training.packing``: several examples in one row give exactly the unpacked loss, logprobs and
gradients (the local engine's block-diagonal mask and restarting positions), the mask does not
leak across examples, and the settings refuse packing where it cannot be honoured."""

from __future__ import annotations

import pytest
import torch
from tinker import types

from tinkerx.backends.local.rows import SEGMENTS, packed_attention
from tinkerx.chat import completion_tokens, prompt_tokens, supervised_datum
from tinkerx.conversation import conversation_datum, render_conversation
from tinkerx.errors import ConfigError
from tinkerx.methods.sft.packing import pack_bins, pack_datums, packed_row, row_length

CONVERSATIONS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
     {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4."}],
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue, the colour of a clear sky at noon."}],
    [{"role": "user", "content": "Count to three"}, {"role": "assistant", "content": "1, 2, 3"}, {"role": "user", "content": "and back?"},
     {"role": "assistant", "content": "3, 2, 1"}, {"role": "user", "content": "thanks"}, {"role": "assistant", "content": "Any time."}],
    [{"role": "system", "content": "You are a poet."}, {"role": "user", "content": "A line on rain"}, {"role": "assistant", "content": "Soft rain on tin."}],
    [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "Okay."}],
]  # fmt: skip


def _single_turn(tokenizer) -> list:
    pairs = [("12+35=", "47"), ("What is the capital of France? Answer in one word.", "Paris"), ("7*8=", "56, since 7*8 is 56"),
             ("Spell cat backwards", "tac"), ("1+1=", "2")]  # fmt: skip
    return [supervised_datum(prompt_tokens(tokenizer, [{"role": "user", "content": q}]), completion_tokens(tokenizer, a)) for q, a in pairs]


def _conversations(tokenizer) -> list:
    return [conversation_datum(render_conversation(tokenizer, c, "all_assistant")) for c in CONVERSATIONS]


def _moved_client(tiny_service, seed: int):
    """A LoRA client whose adapter is not zero (LoRA B starts at zero), so its gradients are non-trivial."""
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=4, seed=seed).result()
    client.forward_backward(_single_turn(client.get_tokenizer()), "cross_entropy").result()
    client.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    return client


def _loss_logprobs_grads(client, data):
    out = client.forward_backward(data, "cross_entropy").result()
    grads = {n: p.grad.detach().clone() for n, p in client.engine.model.named_parameters() if p.grad is not None}
    client.engine.model.zero_grad(set_to_none=True)
    return out.metrics["loss:sum"], [o["logprobs"].to_torch() for o in out.loss_fn_outputs], grads


def test_bins_fill_first_fit_by_decreasing_length_and_never_exceed_the_limit():
    lengths = [5, 9, 3, 7, 2, 12]
    bins = pack_bins(lengths, 12)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 12 for b in bins)
    assert bins == [[5], [1, 2], [0, 3], [4]]  # 12 | 9+3 | 7+5 | 2: longest first, each in the first row with room
    assert pack_bins([20, 3], 10) == [[0], [1]]  # longer than the limit: a row of its own


def test_rows_are_no_longer_than_the_longest_example_and_packing_length_caps_them():
    assert row_length([5, 9, 3], None) == 9  # training.packing_length: null
    assert row_length([5, 9, 3], 8_192) == 9  # a model's context: the step's longest still bounds the row
    assert row_length([5, 9, 3], 6) == 6


def _padded_positions(data) -> int:
    """What a batch costs the engine: every row padded to the widest."""
    return len(data) * max(d.model_input.length for d in data)


def _datum(length: int):
    return types.Datum(model_input=types.ModelInput.from_ints(list(range(1, length + 1))),
                       loss_fn_inputs={"target_tokens": list(range(2, length + 2)), "weights": [1.0] * length})  # fmt: skip


@pytest.mark.parametrize("lengths", [[300, 20, 35, 250, 12, 40, 290, 8], [50] * 6, [100, 99, 98], [7], [400, 30, 30, 30, 30, 30, 30, 30]])
@pytest.mark.parametrize("packing_length", [None, 64, 100_000])
def test_packed_rows_never_cost_more_positions_than_the_unpacked_batch(lengths, packing_length):
    data = [_datum(n) for n in lengths]
    packed = pack_datums(data, packing_length)
    assert _padded_positions(packed) <= _padded_positions(data)
    assert max(d.model_input.length for d in packed) <= max(lengths)  # no row's attention costs more than an unpacked row's
    assert sum(d.model_input.length for d in packed) == sum(lengths)  # every token, once


def test_a_batch_of_very_uneven_lengths_packs_into_fewer_rows():
    lengths = [400, 30, 30, 30, 30, 30, 30, 30, 250, 140]  # the long ones leave room for the short ones
    packed = pack_datums([_datum(n) for n in lengths])
    assert [d.model_input.length for d in packed] == [400, 250 + 140, 7 * 30]  # longest first, each in the first row with room
    assert _padded_positions(packed) == 3 * 400 < _padded_positions([_datum(n) for n in lengths]) == 10 * 400


def test_packed_datum_concatenates_examples_and_numbers_their_segments(tiny_service):
    data = _single_turn(tiny_service.get_tokenizer("tinkerx/tiny"))
    long, row = pack_datums([_datum(sum(d.model_input.length for d in data)), *data])  # a long first example makes room for the five
    assert SEGMENTS not in long.loss_fn_inputs  # a row of one example is left as it was
    segments = row.loss_fn_inputs[SEGMENTS].tolist()
    assert row.model_input.length == len(segments) == sum(d.model_input.length for d in data)
    assert sorted(set(segments)) == list(range(len(data)))
    for s, d in enumerate(data):  # each segment holds one example's inputs, targets and weights, untouched
        at = [i for i, v in enumerate(segments) if v == s]
        assert [row.model_input.to_ints()[i] for i in at] == d.model_input.to_ints()
        assert [row.loss_fn_inputs["weights"].tolist()[i] for i in at] == d.loss_fn_inputs["weights"].tolist()
    assert sum(row.loss_fn_inputs["weights"].tolist()) == sum(sum(d.loss_fn_inputs["weights"].tolist()) for d in data)


def test_positions_restart_per_example_and_padding_attends_only_to_itself():
    segments = torch.tensor([[0, 0, 0, 1, 1, 2, -1, -1]])
    mask, positions = packed_attention(segments, torch.float32)
    assert positions.tolist() == [[0, 1, 2, 0, 1, 0, 0, 1]]
    allowed = (mask[0, 0] == 0).int()
    assert allowed[4].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]  # second example's 2nd token: itself and its first only
    assert allowed[2].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert allowed[7].tolist() == [0, 0, 0, 0, 0, 0, 1, 1]  # padding: never a row with nothing to attend to (NaN)


@pytest.mark.parametrize("batch", ["single_turn", "conversations"])
def test_packed_loss_logprobs_and_gradients_equal_the_unpacked_ones(tiny_service, batch):
    client = _moved_client(tiny_service, seed=7)
    tokenizer = client.get_tokenizer()
    data = _single_turn(tokenizer) if batch == "single_turn" else _conversations(tokenizer)
    packed = pack_datums(data)  # rows as long as the longest example: some of several examples, some of one
    assert 1 < len(packed) < len(data) and any(SEGMENTS in d.loss_fn_inputs for d in packed)

    loss, logprobs, grads = _loss_logprobs_grads(client, data)
    packed_loss, packed_logprobs, packed_grads = _loss_logprobs_grads(client, packed)

    assert packed_loss == pytest.approx(loss, rel=1e-5)
    flat = torch.cat(logprobs)
    packed_flat = torch.cat(packed_logprobs)
    assert sorted(flat.tolist()) == pytest.approx(sorted(packed_flat.tolist()), rel=1e-5, abs=1e-6)
    assert grads.keys() == packed_grads.keys() and grads
    # Relative to each gradient tensor's norm: float32 sums in another order move single entries
    # near zero by ~1e-9 absolute, which no per-entry relative bound survives; a leak moves the norm.
    worst = max(float(torch.linalg.vector_norm(packed_grads[n] - g) / torch.linalg.vector_norm(g)) for n, g in grads.items())
    assert worst <= 1e-5, worst


def test_a_packed_example_does_not_see_the_one_before_it(tiny_service):
    """Changing the first example's tokens leaves the second's logprobs exactly as they were; the
    same rows without segment ids (one long sequence) do change: the check can fail."""
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=4, seed=8).result()
    tokenizer = client.get_tokenizer()
    first, second = _conversations(tokenizer)[:2]
    other = _conversations(tokenizer)[2]

    def second_logprobs(lead, keep_segments: bool) -> torch.Tensor:
        row = packed_row([lead, second])
        inputs = {k: v.to_torch() for k, v in row.loss_fn_inputs.items() if keep_segments or k != SEGMENTS}
        out = client.forward([types.Datum(model_input=row.model_input, loss_fn_inputs=inputs)], "cross_entropy").result()
        segments = torch.tensor(row.loss_fn_inputs[SEGMENTS].tolist())
        return out.loss_fn_outputs[0]["logprobs"].to_torch()[segments == segments[-1]]

    alone = client.forward([second], "cross_entropy").result().loss_fn_outputs[0]["logprobs"].to_torch()
    torch.testing.assert_close(second_logprobs(first, True), alone, rtol=1e-5, atol=1e-5)  # a row keeps batch order: lead first
    torch.testing.assert_close(second_logprobs(other, True), alone, rtol=1e-5, atol=1e-5)
    leaked = [second_logprobs(lead, False) for lead in (first, other)]
    assert not torch.allclose(leaked[0], leaked[1], atol=1e-3)  # without the mask, the lead example shows through


def test_packing_settings_are_checked():
    from tinkerx.settings import TrainingSettings

    assert TrainingSettings(packing=True, packing_length=1024).packing
    assert TrainingSettings(packing=True, packing_length=None).packing  # null: rows as long as the step's longest example
    with pytest.raises(ConfigError, match="training.packing_length must be >= 2 or null, got 1"):
        TrainingSettings(packing=True, packing_length=1)
    with pytest.raises(ConfigError, match="training.packing must be true or false"):
        TrainingSettings(packing="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(("overrides", "message"), [
    (["backend=tinker", "method=sft"], "training.packing=true needs backend=local"),
    (["method=dpo", "dataset=preference_jsonl", "dataset.path=x.jsonl", "~evaluator"], "training.packing=true is for method=sft; method=dpo"),
])  # fmt: skip
def test_packing_is_refused_where_it_cannot_be_honoured(compose_config, tmp_path, overrides, message):
    from tinkerx.build import build

    cfg = compose_config(["model=tiny", "~reward", "training.packing=true", *overrides])
    with pytest.raises(ConfigError, match=message):
        build(cfg, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was opened or written


def test_packing_length_defaults_to_the_steps_longest_example(compose_config):
    """No model's context leaks in as the row length: Qwen3-8B's 32k would be the cap, never the length."""
    cfg = compose_config(["model=qwen3-8b", "dataset=chat", "method=sft", "training.packing=true"])
    assert cfg.training.packing is True and cfg.training.packing_length is None


def test_sft_with_packing_trains_as_the_unpacked_run_does(tmp_path):
    """The SFT method packs each step's conversations: fewer rows, and the same losses and updates."""
    import json

    from tests.helpers.runs import metrics_rows, run_in_process

    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"messages": c}) + "\n" for c in CONVERSATIONS * 4))
    args = ["model=tiny", "method=sft", "dataset=chat", f"dataset.path={path}", "dataset.test_size=0", "dataset.validation_size=4", "~reward",
            "~evaluator", "training.max_steps=3", "training.batch_size=4", "method.validation_every=3", "optim.lr=3e-3"]  # fmt: skip
    run_in_process(args, tmp_path / "plain")
    run_in_process([*args, "training.packing=true"], tmp_path / "packed")  # training.packing_length: null, the default
    plain = [r for r in metrics_rows(tmp_path / "plain") if "train/loss" in r]
    packed = [r for r in metrics_rows(tmp_path / "packed") if "train/loss" in r]
    assert len(plain) == len(packed) == 3
    # Rows as long as each step's longest conversation: a step of close lengths keeps its four rows,
    # the others pack (the order is seed 0's, so the count is fixed).
    assert all(r["train/packed_rows"] <= 4 for r in packed) and sum(r["train/packed_rows"] for r in packed) < 3 * 4
    for a, b in zip(plain, packed):
        assert b["train/tokens"] == a["train/tokens"]
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-5)  # step 3's loss follows two updates: they matched too
    assert packed[-1]["val/loss"] == pytest.approx(plain[-1]["val/loss"], rel=1e-5)

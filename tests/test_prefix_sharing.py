"""The engine's prefix-shared forward/backward gives the per-sample computation's loss, logprobs
and gradients: a GRPO group's prompt is run once, and the vocabulary is projected with autograd
only where the loss needs it."""

from __future__ import annotations

import copy

import pytest
import torch
from tinker import types

from tinkerx.backends.local.rows import shared_prefix_groups
from tinkerx.chat import prompt_tokens


def _group_datums(tokenizer, loss_fn: str, group_size: int = 4, seed: int = 0):
    """Two prompts x ``group_size`` completions of varied lengths, built as GRPO builds them."""
    from tinkerx.methods.shared.rollouts import Sample, rl_datum

    g = torch.Generator().manual_seed(seed)
    data = []
    for q in ("12+35=", "7+8="):
        prompt = prompt_tokens(tokenizer, [{"role": "user", "content": q}])
        for k in range(group_size):
            n = 1 + (k * 3) % 7
            tokens = torch.randint(3, 200, (n,), generator=g).tolist()
            sample = Sample(tokens, (-torch.rand(n, generator=g) * 3).tolist(), "stop", "", advantage=float(torch.randn(1, generator=g)))
            data.append(rl_datum(prompt, sample, ratio_mask=loss_fn == "gspo"))
    if loss_fn == "cross_entropy":  # SFT-shaped: weights on the completion only
        data = [types.Datum(model_input=d.model_input, loss_fn_inputs={
            "target_tokens": d.loss_fn_inputs["target_tokens"].tolist(),
            "weights": [float(a != 0) for a in d.loss_fn_inputs["advantages"].tolist()]}) for d in data]
    return data


def _per_sample(model, data, loss_fn, config):
    """One datum at a time, the whole sequence through the model, full-vocabulary log-softmax."""
    from tinkerx.backends.local.losses import LOSSES

    total, outputs = torch.zeros(()), []
    for d in data:
        ids = torch.tensor([d.model_input.to_ints()])
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        targets = torch.tensor(d.loss_fn_inputs["target_tokens"].tolist())
        lp = logp[torch.arange(len(targets)), targets]
        inputs = {k: v.to_torch().float() for k, v in d.loss_fn_inputs.items() if k != "target_tokens"}
        total = total + LOSSES[loss_fn](lp, inputs, config)
        outputs.append(lp.detach())
    return total, outputs


def test_grpo_datums_are_grouped_by_prompt(tiny_service):
    from tinkerx.backends.local.rows import Row, grad_positions

    tokenizer = tiny_service.get_tokenizer("tinkerx/tiny")
    data = _group_datums(tokenizer, "importance_sampling")
    rows = []
    for d in data:
        inputs = {k: v.to_torch().float() for k, v in d.loss_fn_inputs.items() if k != "target_tokens"}
        rows.append(Row(d.model_input.to_ints(), d.loss_fn_inputs["target_tokens"].to_torch(), inputs,
                         grad_positions("importance_sampling", inputs, d.model_input.length, True)))
    groups = shared_prefix_groups(rows)
    assert [members for _, members in groups] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    prompt_len = len(prompt_tokens(tokenizer, [{"role": "user", "content": "12+35="}]))
    assert groups[0][0] == prompt_len - 1  # every prompt position but the last, which predicts the first sampled token


@pytest.mark.parametrize("loss_fn", ["importance_sampling", "ppo", "gspo", "cross_entropy"])
@pytest.mark.parametrize("rank", [0, 4])
def test_prefix_shared_step_matches_per_sample_gradients(tiny_service, loss_fn, rank):
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=rank, seed=2).result()
    tokenizer = client.get_tokenizer()
    if rank:  # LoRA B starts at zero; move it so the adapter contributes to the prompt's KV cache too
        client.forward_backward(_group_datums(tokenizer, "cross_entropy", seed=5), "cross_entropy").result()
        client.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    reference = copy.deepcopy(client.engine.model)
    data = _group_datums(tokenizer, loss_fn)
    config = {"clip_low_threshold": 0.9, "clip_high_threshold": 1.1} if loss_fn in ("ppo", "gspo") else {}

    out = client.forward_backward(data, loss_fn, config or None).result()
    expected, expected_logprobs = _per_sample(reference, data, loss_fn, config)
    expected.backward()

    assert out.metrics["loss:sum"] == pytest.approx(float(expected.detach()), rel=1e-4, abs=1e-4)
    for got, want in zip(out.loss_fn_outputs, expected_logprobs):  # prompt positions too, from the shared pass
        torch.testing.assert_close(got["logprobs"].to_torch(), want, rtol=1e-4, atol=1e-4)
    ours = dict(client.engine.model.named_parameters())
    compared = 0
    for name, p in reference.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(ours[name].grad, p.grad, rtol=1e-3, atol=1e-5)
            compared += 1
    assert compared > 0
    client.engine.model.zero_grad(set_to_none=True)


def test_forward_only_returns_every_position_without_gradients(tiny_service):
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=4, seed=3).result()
    data = _group_datums(client.get_tokenizer(), "importance_sampling")
    out = client.forward(data, "importance_sampling").result()
    _, expected = _per_sample(client.engine.model, data, "importance_sampling", {})
    for got, want in zip(out.loss_fn_outputs, expected):
        torch.testing.assert_close(got["logprobs"].to_torch(), want, rtol=1e-4, atol=1e-4)
    assert all(p.grad is None for p in client.engine.model.parameters())


def test_each_group_runs_backward_before_the_next_group_runs_forward(tiny_service):
    """A GRPO batch holds one group's activations at a time: the backward of a prompt's group comes
    before the next prompt's forward (the gradients are checked equal above)."""
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=4, seed=6).result()
    engine = client.engine
    decoder, _ = engine._parts()
    events: list[str] = []
    first_layer = decoder.layers[0]
    hooks = [
        first_layer.register_forward_pre_hook(lambda *_: events.append("forward")),
        first_layer.register_full_backward_hook(lambda *_: events.append("backward")),
    ]
    try:
        client.forward_backward(_group_datums(client.get_tokenizer(), "importance_sampling"), "importance_sampling").result()
    finally:
        for h in hooks:
            h.remove()
    # Per group: the prompt pass, the completions pass, then one backward through both.
    collapsed = [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]
    assert collapsed == ["forward", "backward", "forward", "backward"], events

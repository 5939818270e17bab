"""The local backend against independent torch computations: losses, gradients, optimizer, checkpoints."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tinker import types

from tinkerx.chat import completion_tokens, prompt_tokens, supervised_datum


def _datums(tokenizer, loss_fn: str, seed: int = 0):
    rng = torch.Generator().manual_seed(seed)
    data = []
    for q, a in [("12+35=", "47"), ("7+8=", "15"), ("99+1=", "100")]:
        prompt = prompt_tokens(tokenizer, [{"role": "user", "content": q}])
        completion = completion_tokens(tokenizer, a)
        base = supervised_datum(prompt, completion)
        targets = base.loss_fn_inputs["target_tokens"].tolist()
        n = len(targets)
        if loss_fn == "cross_entropy":
            inputs = {"target_tokens": targets, "weights": (torch.rand(n, generator=rng) > 0.3).float().tolist()}
        else:
            inputs = {
                "target_tokens": targets,
                "logprobs": (-torch.rand(n, generator=rng) * 3).tolist(),
                "advantages": (torch.randn(n, generator=rng)).tolist(),
            }
        data.append(types.Datum(model_input=base.model_input, loss_fn_inputs=inputs))
    return data


def _reference_loss(model, data, loss_fn: str, config: dict) -> torch.Tensor:
    """Tinker's definitions written out directly, one datum at a time, no padding."""
    total = torch.zeros(())
    for d in data:
        ids = torch.tensor([d.model_input.to_ints()])
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        targets = torch.tensor(d.loss_fn_inputs["target_tokens"].tolist())
        lp = logp[torch.arange(len(targets)), targets]
        f = {k: torch.tensor(v.tolist()) for k, v in d.loss_fn_inputs.items()}
        if loss_fn == "cross_entropy":
            total = total + (-(lp * f["weights"]).sum())
        else:
            ratio = (lp - f["logprobs"]).exp()
            if loss_fn == "importance_sampling":
                total = total - (ratio * f["advantages"]).sum()
            else:
                lo, hi = config.get("clip_low_threshold", 0.8), config.get("clip_high_threshold", 1.2)
                total = total - torch.minimum(ratio * f["advantages"], ratio.clamp(lo, hi) * f["advantages"]).sum()
    return total


@pytest.mark.parametrize("loss_fn,config", [("cross_entropy", {}), ("importance_sampling", {}), ("ppo", {}), ("ppo", {"clip_low_threshold": 0.95, "clip_high_threshold": 1.05})])
@pytest.mark.parametrize("rank", [0, 4])
def test_loss_and_gradients_match_torch(tiny_service, loss_fn, config, rank):
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=rank, seed=1).result()
    if rank:  # LoRA B starts at zero; move it so the adapter actually contributes
        client.forward_backward(_datums(client.get_tokenizer(), "cross_entropy", seed=9), "cross_entropy").result()
        client.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    reference = copy.deepcopy(client.engine.model)
    data = _datums(client.get_tokenizer(), loss_fn)

    out = client.forward_backward(data, loss_fn, config or None).result()
    expected = _reference_loss(reference, data, loss_fn, config)
    expected.backward()

    assert out.metrics["loss:sum"] == pytest.approx(float(expected.detach()), rel=1e-4, abs=1e-4)
    ours = dict(client.engine.model.named_parameters())
    compared = 0
    for name, p in reference.named_parameters():
        if p.grad is None:
            continue
        assert ours[name].grad is not None, name
        torch.testing.assert_close(ours[name].grad, p.grad, rtol=1e-3, atol=1e-5)
        compared += 1
    assert compared > 0
    # Per-datum logprobs come back with the targets' length.
    assert [len(o["logprobs"].tolist()) for o in out.loss_fn_outputs] == [len(d.loss_fn_inputs["target_tokens"].tolist()) for d in data]


def test_unknown_loss_is_rejected(tiny_service):
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0).result()
    data = _datums(client.get_tokenizer(), "cross_entropy")
    with pytest.raises(ValueError, match="unknown loss_fn 'dpo'; valid: cross_entropy, importance_sampling, ppo"):
        client.forward_backward(data, "dpo").result()


def test_forward_does_not_accumulate_gradients(tiny_service):
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0).result()
    data = _datums(client.get_tokenizer(), "cross_entropy")
    a = client.forward(data, "cross_entropy").result()
    assert all(p.grad is None for p in client.engine.model.parameters())
    b = client.forward(data, "cross_entropy").result()
    assert a.metrics["loss:sum"] == b.metrics["loss:sum"]


def test_optim_step_is_adamw_with_clipping(tiny_service):
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=3).result()
    reference = copy.deepcopy(client.engine.model)
    data = _datums(client.get_tokenizer(), "cross_entropy")
    params = types.AdamParams(learning_rate=3e-3, beta1=0.8, beta2=0.9, eps=1e-6, weight_decay=0.1, grad_clip_norm=0.5)
    for _ in range(3):
        client.forward_backward(data, "cross_entropy").result()
        metrics = client.optim_step(params).result().metrics

    ref_params = [p for p in reference.parameters()]
    optimizer = torch.optim.AdamW(ref_params, lr=3e-3, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)
    for _ in range(3):
        _reference_loss(reference, data, "cross_entropy", {}).backward()
        norm = torch.nn.utils.clip_grad_norm_(ref_params, 0.5)
        optimizer.step()
        optimizer.zero_grad()
    assert metrics["grad_norm"] == pytest.approx(float(norm), rel=1e-3)
    assert float(norm) > 0.5  # clipping was active
    ours = dict(client.engine.model.named_parameters())
    for name, p in reference.named_parameters():
        torch.testing.assert_close(ours[name], p, rtol=1e-4, atol=1e-6)


def test_save_and_load_state_resume_exactly(tiny_service):
    def train(client, steps):
        data = _datums(client.get_tokenizer(), "cross_entropy")
        losses = []
        for _ in range(steps):
            losses.append(client.forward_backward(data, "cross_entropy").result().metrics["loss:sum"])
            client.optim_step(types.AdamParams(learning_rate=1e-2)).result()
        return losses

    straight = tiny_service.create_lora_training_client("tinkerx/tiny", rank=4, seed=5).result()
    expected = train(straight, 4)

    first = tiny_service.create_lora_training_client("tinkerx/tiny", rank=4, seed=5).result()
    head = train(first, 2)
    path = first.save_state("half").result().path
    resumed = tiny_service.create_training_client_from_state_with_optimizer(path).result()
    tail = train(resumed, 2)
    assert head + tail == pytest.approx(expected, rel=1e-5)

    # Without the optimizer state, Adam restarts and the trajectory differs.
    fresh = tiny_service.create_training_client_from_state(path).result()
    assert train(fresh, 2) != pytest.approx(expected[2:], rel=1e-5)


def test_sampling_client_is_a_snapshot(tiny_service):
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=2).result()
    tok = client.get_tokenizer()
    prompt = types.ModelInput.from_ints(prompt_tokens(tok, [{"role": "user", "content": "1+1="}]))
    params = types.SamplingParams(max_tokens=6, temperature=1.0, seed=11)
    before = client.save_weights_and_get_sampling_client()
    first = before.sample(prompt, 4, params).result()
    data = _datums(tok, "cross_entropy")
    for _ in range(5):
        client.forward_backward(data, "cross_entropy").result()
        client.optim_step(types.AdamParams(learning_rate=5e-2)).result()
    after = client.save_weights_and_get_sampling_client()
    assert [s.logprobs for s in before.sample(prompt, 4, params).result().sequences] == [s.logprobs for s in first.sequences]
    assert [s.logprobs for s in after.sample(prompt, 4, params).result().sequences] != [s.logprobs for s in first.sequences]
    # ... and sampling an old snapshot leaves the training weights where training left them.
    loss_a = client.forward(data, "cross_entropy").result().metrics["loss:sum"]
    before.sample(prompt, 2, params).result()
    assert client.forward(data, "cross_entropy").result().metrics["loss:sum"] == loss_a
    assert math.isfinite(loss_a)

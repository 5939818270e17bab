"""Token-budgeted micro-batches: the same loss, logprobs and gradients as one pass, for every method's loss.

Each test runs one batch twice on the same weights: once with a budget that holds it whole (one
pass, as before), once with a budget that cuts it into several micro-batches. Tinker's losses are
sums over tokens, so accumulating gradients gives the same update; DPO's custom loss couples the
two datums of a pair and averages over pairs, so it goes through the SDK's two-pass route instead.
"""

from __future__ import annotations

import random

import pytest
import torch
from tinker import types

from tinkerx.backends.local.budget import micro_batches
from tinkerx.chat import completion_tokens, prompt_tokens, supervised_datum
from tinkerx.errors import OutOfMemoryError, UserError
from tinkerx.methods.dpo.loss import dpo_loss_fn

WHOLE = 10**9  # a budget no batch here reaches: one pass
TIGHT = 160  # padded tokens: cuts every batch below into several micro-batches


@pytest.fixture(scope="module")
def client(tiny_service):
    return tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=7).result()


def _prompt(tok, text: str) -> list[int]:
    return prompt_tokens(tok, [{"role": "user", "content": text}])


def _sft_batch(tok) -> list[types.Datum]:
    rng = random.Random(0)
    return [supervised_datum(_prompt(tok, f"{a}+{a * 3}="), completion_tokens(tok, "x" * rng.randint(3, 70))) for a in range(9)]


def _rl_batch(tok, *, groups: int = 3, group_size: int = 4) -> list[types.Datum]:
    """GRPO-shaped: each group one prompt with several completions (their prompts are shared in a pass)."""
    rng = random.Random(1)
    data = []
    for g in range(groups):
        prompt = _prompt(tok, f"question {g}: what is {g}*{g + 5}? Think it through.")
        for _ in range(group_size):
            completion = completion_tokens(tok, "".join(rng.choice("0123456789 ") for _ in range(rng.randint(4, 40))))
            tokens = prompt + completion
            n = len(tokens) - 1
            advantage = rng.uniform(-1, 1)
            data.append(types.Datum(
                model_input=types.ModelInput.from_ints(tokens[:-1]),
                loss_fn_inputs={
                    "target_tokens": tokens[1:],
                    # the sampler's logprobs, near the policy's so ratios stay in the clip range and out of it
                    "logprobs": [0.0] * (len(prompt) - 1) + [rng.uniform(-6.0, -4.0) for _ in completion],
                    "advantages": [0.0] * (len(prompt) - 1) + [advantage] * len(completion),
                },
            ))
            assert len(data[-1].loss_fn_inputs["advantages"].tolist()) == n
    return data


def _distill_batch(tok) -> list[types.Datum]:
    """On-policy distillation: importance sampling with a different advantage on every token."""
    rng = random.Random(2)
    data = []
    for d in _rl_batch(tok, groups=2, group_size=3):
        adv = [a and rng.uniform(-2, 2) for a in d.loss_fn_inputs["advantages"].tolist()]
        data.append(types.Datum(model_input=d.model_input, loss_fn_inputs={**d.loss_fn_inputs, "advantages": adv}))
    return data


def _run(client, budget: int, call) -> tuple[float, list[list[float]], list[torch.Tensor]]:
    engine = client.engine
    engine.model.zero_grad(set_to_none=True)
    engine.token_budget = budget
    out = call().result()
    grads = [p.grad.detach().clone() for _, p in engine.trainable_named()]
    engine.model.zero_grad(set_to_none=True)
    logprobs = [o["logprobs"].tolist() for o in out.loss_fn_outputs]
    return out.metrics["loss:sum"], logprobs, grads


def _passes(client, budget: int, call) -> int:
    """Forward passes of the decoder for one call under ``budget``."""
    decoder = client.engine._parts()[0]
    count = []
    hook = decoder.register_forward_pre_hook(lambda *_: count.append(1))
    try:
        _run(client, budget, call)
    finally:
        hook.remove()
    return len(count)


def _assert_same(client, call) -> None:
    whole = _run(client, WHOLE, call)
    split = _run(client, TIGHT, call)
    assert _passes(client, TIGHT, call) > _passes(client, WHOLE, call), "the tight budget must actually split the batch"
    assert split[0] == pytest.approx(whole[0], rel=1e-5, abs=1e-5)
    for a, b in zip(split[1], whole[1]):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-5)
    assert any(float(g.abs().sum()) > 0 for g in whole[2]), "the batch must train something"
    for a, b in zip(split[2], whole[2]):
        # float32 sums in another order: each tensor within 1e-5 of its own largest entry (a lost or
        # doubled micro-batch moves entries by far more than that)
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5 * max(float(b.abs().max()), 1e-8))


def test_sft_cross_entropy_micro_batches_match_one_pass(client):
    data = _sft_batch(client.get_tokenizer())
    _assert_same(client, lambda: client.forward_backward(data, "cross_entropy"))


@pytest.mark.parametrize("loss_fn", ["importance_sampling", "ppo", "gspo"])
def test_grpo_losses_micro_batches_match_one_pass(client, loss_fn):
    data = _rl_batch(client.get_tokenizer())
    _assert_same(client, lambda: client.forward_backward(data, loss_fn))


def test_distillation_per_token_advantages_micro_batches_match_one_pass(client):
    data = _distill_batch(client.get_tokenizer())
    _assert_same(client, lambda: client.forward_backward(data, "importance_sampling"))


def test_forward_only_micro_batches_match_one_pass(client):
    data = _sft_batch(client.get_tokenizer())
    client.engine.token_budget = WHOLE
    whole = client.forward(data, "cross_entropy").result()
    client.engine.token_budget = TIGHT
    split = client.forward(data, "cross_entropy").result()
    assert split.metrics["loss:sum"] == pytest.approx(whole.metrics["loss:sum"], rel=1e-5)


@pytest.mark.parametrize("variant", ["sigmoid", "ipo", "length_normalized"])
def test_dpo_custom_loss_micro_batches_match_one_pass(client, variant):
    tok = client.get_tokenizer()
    rng = random.Random(3)
    data, chosen_n, rejected_n = [], [], []
    for i in range(5):
        prompt = _prompt(tok, f"pair {i}: say something")
        chosen, rejected = completion_tokens(tok, "yes " * rng.randint(1, 12)), completion_tokens(tok, "no " * rng.randint(1, 12))
        data += [supervised_datum(prompt, chosen), supervised_datum(prompt, rejected)]
        chosen_n.append(len(chosen))
        rejected_n.append(len(rejected))
    loss_fn = dpo_loss_fn([-20.0 + i for i in range(5)], [-25.0 + 2 * i for i in range(5)], chosen_n, rejected_n, 0.1, variant)
    _assert_same(client, lambda: client.forward_backward_custom(data, loss_fn))


def test_micro_batches_keep_order_and_the_budget():
    lengths = [10, 50, 20, 20, 90, 5]
    assert micro_batches(lengths, range(6), None) == [[0, 1, 2, 3, 4, 5]]
    assert micro_batches(lengths, range(6), 6 * 90) == [[0, 1, 2, 3, 4, 5]]  # fits: one pass, as before
    parts = micro_batches(lengths, range(6), 100)
    assert [i for p in parts for i in p] == [0, 1, 2, 3, 4, 5]
    assert all(len(p) * max(lengths[i] for i in p) <= 100 for p in parts)
    assert micro_batches([300, 10], [0, 1], 100) == [[0], [1]]  # longer than the budget alone: runs alone


def test_out_of_memory_is_one_line_naming_step_lengths_and_keys(client, monkeypatch):
    """A CPU allocator failure mid-pass becomes OutOfMemoryError (a UserError), gradients dropped."""
    data = _sft_batch(client.get_tokenizer())
    engine = client.engine
    engine.token_budget = WHOLE

    def fail(*_, **__):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 9663676416 bytes.")

    monkeypatch.setattr(engine, "_plain_logprobs", fail)
    with pytest.raises(OutOfMemoryError) as caught:
        client.forward_backward(data, "cross_entropy").result()
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    lengths = [len(d.model_input.to_ints()) for d in data]
    assert f"step {engine.steps + 1}" in message and f"{min(lengths)}-{max(lengths)} tokens" in message
    for key in ("training.max_tokens_per_forward", "training.batch_size", "dataset.max_length"):
        assert key in message
    assert all(p.grad is None for _, p in engine.trainable_named())


def test_other_runtime_errors_keep_their_traceback(client, monkeypatch):
    engine = client.engine

    def fail(*_, **__):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(engine, "_plain_logprobs", fail)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        client.forward_backward(_sft_batch(client.get_tokenizer()), "cross_entropy").result()


def test_the_automatic_budget_cuts_a_batch_that_the_memory_cannot_hold_in_one_pass(monkeypatch):
    """A quarter of the device's memory over one token's activations, a power of two, with no floor at
    the model's context: SmolLM2 (8,192-token context) on a 24 GB CPU machine had a budget of 8,192,
    so 16 DPO sequences of 512 tokens (~24 GB of activations) ran in one pass and were killed."""
    import torch
    from transformers import LlamaConfig

    from tinkerx.backends.local import budget

    smollm2 = LlamaConfig(hidden_size=576, num_hidden_layers=30, intermediate_size=1536, vocab_size=49152, max_position_embeddings=8192)
    monkeypatch.setattr(budget, "device_memory_bytes", lambda device: 24 * 2**30)
    tokens = budget.auto_token_budget(smollm2, 4, torch.device("cpu"))
    assert tokens == 1024  # 0.25 x 24 GiB / ~3.3 MB a token = ~1,900, rounded down
    assert tokens * budget.activation_bytes_per_token(smollm2, 4) <= budget.MEMORY_SHARE * 24 * 2**30
    assert len(micro_batches([512] * 16, list(range(16)), tokens)) == 8
    monkeypatch.setattr(budget, "device_memory_bytes", lambda device: 25 * 2**30)  # a little more memory: the same passes
    assert budget.auto_token_budget(smollm2, 4, torch.device("cpu")) == tokens
    monkeypatch.setattr(budget, "device_memory_bytes", lambda device: 2**20)  # less than one token's worth
    assert budget.auto_token_budget(smollm2, 4, torch.device("cpu")) == 1

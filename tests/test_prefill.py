"""The prefill runs the prefix a batch's prompts share once, and every row still gets its own cache."""

from __future__ import annotations

import pytest
import torch

from tinkerx.backends.local.generation import sample_batch
from tinkerx.backends.local.prefill import MIN_SHARED_PREFIX, cache_kwarg, prefill, shared_prefix_length
from tinkerx.chat import prompt_tokens

INSTRUCTION = "Solve the problem, show your steps, and give the final answer after ####. Problem: "
QUESTIONS = ["12+35=", "a much longer question: 100+200=", "9+9=", "what is 7 times 8?"]


def test_shared_prefix_leaves_every_row_a_token_of_its_own():
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5, 6]]) == 3
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # a row that is the prefix keeps its last token
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix_length([[1, 2], [3, 4]]) == 0
    assert shared_prefix_length([[1, 2, 3]]) == 0  # one row: nothing to share


@pytest.fixture(scope="module")
def model_and_prompts(tiny_service):
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=4).result()
    tok, model = client.get_tokenizer(), client.engine.model
    prompts = [prompt_tokens(tok, [{"role": "user", "content": INSTRUCTION + q}]) for q in QUESTIONS]
    assert shared_prefix_length(prompts) >= MIN_SHARED_PREFIX + 40, "the prompts must share a long prefix"
    assert len({len(p) for p in prompts}) > 1, "and differ in length, so rows are padded"
    return tok, model, prompts


@torch.no_grad()
def test_shared_prefix_prefill_gives_each_row_the_cache_of_a_whole_prefill(model_and_prompts):
    _, model, prompts = model_and_prompts
    forwards: list[tuple[int, int]] = []
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: forwards.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        shared = prefill(model, prompts, 0, torch.device("cpu"), share_prefix=True)
    finally:
        hook.remove()
    whole = prefill(model, prompts, 0, torch.device("cpu"), share_prefix=False)
    prefix = shared_prefix_length(prompts)
    assert forwards == [(1, prefix), (len(prompts), max(map(len, prompts)) - prefix)]
    torch.testing.assert_close(shared[1], whole[1], atol=1e-5, rtol=1e-5)  # last logits
    assert torch.equal(shared[3][:, -1], whole[3][:, -1])  # each row's last position
    # One decode step on each cache: the same next-token logits, so the caches hold the same keys and values.
    next_ids = whole[1].argmax(-1, keepdim=True)
    logits = []
    for cache, _, mask, positions in (shared, whole):
        mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=-1)
        out = model(input_ids=next_ids, attention_mask=mask, position_ids=positions[:, -1:] + 1, **cache_kwarg(model, cache))
        logits.append(out.logits[:, -1])
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("num_samples, max_rows", [(3, None), (2, 4)])
def test_sampling_with_a_shared_prefix_gives_the_rows_of_the_loop_as_it_was(model_and_prompts, num_samples, max_rows):
    """The sampler (shared prefix, in-place cache, rows leaving and joining) against the old loop
    (every prompt prefilled whole, every row to the end): the same tokens, stop reasons and logprobs."""
    tok, model, prompts = model_and_prompts

    def run(compact: bool, stops=frozenset()):
        out = sample_batch(
            model, prompts, num_samples, max_tokens=16, temperature=1.0, top_k=-1, top_p=1.0, stop_token_ids=stops,
            stop_strings=[], decode=lambda t: tok.decode(t), generators=[torch.Generator().manual_seed(s) for s in range(len(prompts))],
            pad_token_id=tok.pad_token_id or 0, compact=compact, max_rows=max_rows,
        )
        return [g for per_prompt in out for g in per_prompt]

    free_run = run(compact=False)
    stops = set(sorted({t for g in free_run for t in g.tokens} - {g.tokens[0] for g in free_run})[::3])
    old, new = run(False, stops), run(True, stops)
    assert len({len(g.tokens) for g in old}) >= 3, "the test needs varied lengths"
    for a, b in zip(old, new):
        assert a.tokens == b.tokens and a.stop_reason == b.stop_reason
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_a_lora_model_is_given_the_cache_under_the_name_its_base_model_takes(tiny_service):
    """peft's forward takes ``**kwargs``; passing transformers 5.x the old ``past_key_values`` name warned on every forward."""
    import inspect
    import warnings

    model = tiny_service.create_lora_training_client("tinkerx/tiny", rank=4, seed=4).result().engine.model
    assert hasattr(model, "get_base_model"), "a LoRA client's model is peft-wrapped"
    expected = "cache" if "cache" in inspect.signature(model.get_base_model().forward).parameters else "past_key_values"
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache, logits, mask, positions = prefill(model, [[1, 2, 3, 4]], pad_token_id=0, device=torch.device("cpu"))
        model(input_ids=logits.argmax(-1, keepdim=True), position_ids=positions[:, -1:] + 1, **cache_kwarg(model, cache))
    assert expected in cache_kwarg(model, cache)
    assert not [w for w in caught if "past_key_values" in str(w.message)]

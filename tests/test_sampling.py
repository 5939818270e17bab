"""Local sampling: logprobs agree with the trainer, and stop sequences, seeds and limits are honoured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tinker import types

from tinkerx.chat import prompt_tokens
from tinkerx.sampler import prompt_seeds, sample_prompts


@pytest.fixture(scope="module")
def trained(tiny_service):
    """A tiny model nudged towards '47' so that stop tokens and strings actually occur."""
    from tinkerx.chat import completion_tokens, supervised_datum

    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=0).result()
    tok = client.get_tokenizer()
    prompt = prompt_tokens(tok, [{"role": "user", "content": "12+35="}])
    datum = supervised_datum(prompt, completion_tokens(tok, "47 is the sum"))
    for _ in range(60):
        client.forward_backward([datum] * 4, "cross_entropy").result()
        client.optim_step(types.AdamParams(learning_rate=5e-3)).result()
    return client, tok, prompt


def test_sampled_logprobs_equal_forward_logprobs(trained):
    client, tok, prompt = trained
    sampler = client.save_weights_and_get_sampling_client()
    seqs = sampler.sample(types.ModelInput.from_ints(prompt), 6, types.SamplingParams(max_tokens=12, temperature=1.3, seed=3)).result().sequences
    for seq in seqs:
        full = prompt + seq.tokens
        datum = types.Datum(
            model_input=types.ModelInput.from_ints(full[:-1]),
            loss_fn_inputs={"target_tokens": full[1:], "weights": [0.0] * (len(full) - 1)},
        )
        forward = client.forward([datum], "cross_entropy").result().loss_fn_outputs[0]["logprobs"].tolist()
        assert forward[-len(seq.tokens):] == pytest.approx(seq.logprobs, abs=1e-4)


def test_batched_prompts_match_single_requests(trained):
    client, tok, prompt = trained
    sampler = client.save_weights_and_get_sampling_client()
    other = prompt_tokens(tok, [{"role": "user", "content": "a much longer question: 100+200="}])
    for temperature in (0.0, 1.0):
        params = types.SamplingParams(max_tokens=8, temperature=temperature, seed=21)
        batched = [f.result().sequences for f in sample_prompts(sampler, [prompt, other], 3, params)]
        single = [sampler.sample(types.ModelInput.from_ints(p), 3, params).result().sequences for p in (prompt, other)]
        for b_seqs, s_seqs in zip(batched, single):
            for b, s in zip(b_seqs, s_seqs):
                # Padding and batch neighbours change neither the tokens nor their logprobs.
                assert b.tokens == s.tokens
                assert b.logprobs == pytest.approx(s.logprobs, abs=1e-4)


def test_stop_token_and_stop_string(trained):
    client, tok, prompt = trained
    sampler = client.save_weights_and_get_sampling_client()
    greedy = sampler.sample(types.ModelInput.from_ints(prompt), 1, types.SamplingParams(max_tokens=20, temperature=0.0)).result().sequences[0]
    text = tok.decode(greedy.tokens)
    assert text.startswith("47"), text
    assert greedy.stop_reason == "stop" and greedy.tokens[-1] == tok.eos_token_id

    by_string = sampler.sample(types.ModelInput.from_ints(prompt), 1, types.SamplingParams(max_tokens=20, temperature=0.0, stop=[" is"])).result().sequences[0]
    assert tok.decode(by_string.tokens) == "47 is" and by_string.stop_reason == "stop"

    space = tok.encode(" ", add_special_tokens=False)[0]
    by_token = sampler.sample(types.ModelInput.from_ints(prompt), 1, types.SamplingParams(max_tokens=20, temperature=0.0, stop=[space])).result().sequences[0]
    assert by_token.tokens[-1] == space and tok.decode(by_token.tokens) == "47 "


def test_max_tokens_gives_length_stop(trained):
    client, tok, prompt = trained
    sampler = client.save_weights_and_get_sampling_client()
    seqs = sampler.sample(types.ModelInput.from_ints(prompt), 3, types.SamplingParams(max_tokens=2, temperature=1.0, seed=1)).result().sequences
    assert all(len(s.tokens) <= 2 for s in seqs)
    assert any(s.stop_reason == "length" and len(s.tokens) == 2 for s in seqs)


def test_seeds_reproduce_and_differ(tiny_service):
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=0).result()
    tok = client.get_tokenizer()
    sampler = client.save_weights_and_get_sampling_client()
    prompt = types.ModelInput.from_ints(prompt_tokens(tok, [{"role": "user", "content": "hello"}]))

    def draw(seed):
        return [s.tokens for s in sampler.sample(prompt, 4, types.SamplingParams(max_tokens=10, temperature=1.0, seed=seed)).result().sequences]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_one_fixed_seed_gives_each_prompt_its_own_draws(tiny_service):
    """A fixed seed (an evaluation's) is spread into one seed per prompt: with one seed shared, the
    same prompt sent twice in a request came back with the same samples -- every prompt drew the same
    numbers. The derived seeds are stable, so a rerun (and a run's baseline and final evaluation)
    draws the same numbers for the same prompt, batched or sent one by one."""
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=0).result()
    tok = client.get_tokenizer()
    sampler = client.save_weights_and_get_sampling_client()
    prompt = prompt_tokens(tok, [{"role": "user", "content": "hello"}])
    params = types.SamplingParams(max_tokens=10, temperature=1.0, seed=5)

    def tokens(futures):
        return [[s.tokens for s in f.result().sequences] for f in futures]

    shared = tokens(sample_prompts(sampler, [prompt, prompt], 4, params))
    assert shared[0] == shared[1]  # what one seed for all prompts does
    seeds = prompt_seeds(5, 2)
    own = tokens(sample_prompts(sampler, [prompt, prompt], 4, params, seeds))
    assert own[0] != own[1]
    assert own == tokens(sample_prompts(sampler, [prompt, prompt], 4, params, prompt_seeds(5, 2)))
    alone = [[s.tokens for s in sampler.sample(types.ModelInput.from_ints(prompt), 4, params.model_copy(update={"seed": seed})).result().sequences] for seed in seeds]
    assert own == alone
    assert prompt_seeds(None, 3) is None and len(set(prompt_seeds(0, 100))) == 100 and prompt_seeds(0, 3) != prompt_seeds(1, 3)
    with pytest.raises(ValueError, match="2 prompts need as many seeds, got 1"):
        sample_prompts(sampler, [prompt, prompt], 4, params, [1])


def test_top_k_one_is_greedy(trained):
    client, tok, prompt = trained
    sampler = client.save_weights_and_get_sampling_client()
    greedy = sampler.sample(types.ModelInput.from_ints(prompt), 1, types.SamplingParams(max_tokens=6, temperature=0.0)).result().sequences[0]
    topk = sampler.sample(types.ModelInput.from_ints(prompt), 4, types.SamplingParams(max_tokens=6, temperature=2.0, top_k=1, seed=5)).result().sequences
    assert all(s.tokens == greedy.tokens for s in topk)


def test_top_p_restricts_to_nucleus():
    from tinkerx.backends.local.generation import _filter_logits

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(_filter_logits(logits, 1.0, -1, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(_filter_logits(logits, 1.0, -1, 0.81))
    assert kept.tolist() == [[True, True, True, False]]


@pytest.mark.parametrize("temperature, top_k", [(1.0, -1), (0.8, 20)])
def test_dropping_finished_rows_changes_no_row(tiny_service, temperature, top_k):
    """Rows leave the decode batch as they stop (and the chunked host check of accelerators cuts the
    tokens sampled after a stop): every row's tokens and logprobs are those of the old full-batch loop."""
    from tinkerx.backends.local.generation import sample_batch

    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=4).result()
    tok, model = client.get_tokenizer(), client.engine.model
    prompts = [prompt_tokens(tok, [{"role": "user", "content": q}]) for q in ("12+35=", "a much longer question: 100+200=", "9+9=", "1+2+3=")]
    batch_rows: list[int] = []  # rows of every decode forward of the last run
    def run(stops=frozenset(), **kw):
        batch_rows.clear()
        out = sample_batch(
            model, prompts, 4, max_tokens=24, temperature=temperature, top_k=top_k, top_p=1.0,
            stop_token_ids=stops, stop_strings=["sum"], decode=lambda t: tok.decode(t),
            generators=[torch.Generator().manual_seed(s) for s in (5, 6, 7, 8)], pad_token_id=tok.pad_token_id or 0, **kw,
        )
        return [g for per_prompt in out for g in per_prompt]

    # Stop tokens picked among what this model writes (every 4th distinct token of a free run):
    # lengths then spread widely, and rows finish at many different steps.
    free_run = run(compact=False)
    firsts = {g.tokens[0] for g in free_run}
    stops = set(sorted({t for g in free_run for t in g.tokens} - firsts)[::4])
    old = run(stops, compact=False)
    assert len({len(g.tokens) for g in old}) >= 3, "the test needs varied lengths"
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: batch_rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    try:
        runs = []
        for kw in ({}, {"compact_share": 0.0}, {"check_every": 5}):
            runs.append(run(stops, compact=True, **kw))
            # The batch did shrink (the old loop keeps all 16 rows to the end); dropping every finished
            # row at once shrinks it at more steps than waiting for a share of the batch to finish.
            assert min(batch_rows[1:]) < 16
            sizes = len(set(batch_rows))
            if kw == {"compact_share": 0.0}:
                assert sizes >= shares_default
            elif not kw:
                shares_default = sizes
    finally:
        hook.remove()
    for new in runs:
        for a, b in zip(old, new):
            assert a.tokens == b.tokens and a.stop_reason == b.stop_reason
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_rows_leaving_before_a_new_block_of_draws_keep_their_own_draws(tiny_service, monkeypatch):
    """Past DRAW_BLOCK steps each prompt draws its next block of uniforms; some of its rows may have
    ended and left the batch by then (a 512-token code sample next to a short one): the rows left
    take their own sample's draws, as in the old full-batch loop (once a shape error ended the run)."""
    from tinkerx.backends.local import generation

    monkeypatch.setattr(generation, "DRAW_BLOCK", 4)  # a new block every 4 steps instead of 256
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=4).result()
    tok, model = client.get_tokenizer(), client.engine.model
    prompts = [prompt_tokens(tok, [{"role": "user", "content": q}]) for q in ("12+35=", "9+9=", "1+2+3=")]

    def run(stops=frozenset(), **kw):
        out = generation.sample_batch(
            model, prompts, 4, max_tokens=24, temperature=1.0, top_k=-1, top_p=1.0, stop_token_ids=stops, stop_strings=[],
            decode=lambda t: tok.decode(t), generators=[torch.Generator().manual_seed(s) for s in (1, 2, 3)],
            pad_token_id=tok.pad_token_id or 0, **kw,
        )
        return [g for per_prompt in out for g in per_prompt]

    free_run = run(compact=False)
    stops = set(sorted({t for g in free_run for t in g.tokens} - {g.tokens[0] for g in free_run})[::4])
    old = run(stops, compact=False)
    assert len({len(g.tokens) for g in old}) >= 3 and min(len(g.tokens) for g in old) < 20, "the test needs rows ending early"
    new = run(stops, compact=True, compact_share=0.0)  # every ended row leaves at once
    assert [g.tokens for g in new] == [g.tokens for g in old]


@pytest.mark.parametrize("num_samples, max_rows, check_every, temperature", [(2, 4, None, 1.0), (1, 3, 5, 1.0), (4, 3, None, 1.0), (2, 5, None, 0.7), (2, 5, None, 0.0)])
def test_waiting_prompts_join_as_rows_finish(tiny_service, num_samples, max_rows, check_every, temperature):
    """With a row limit, prompts beyond it wait and are prefilled into the running batch as rows
    finish: no decode forward exceeds the limit (beyond one prompt's samples), prompts do join a
    running batch, and every row's tokens and logprobs are those of the old loop that decoded every
    row at once to the end."""
    from tinkerx.backends.local.generation import sample_batch

    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=4).result()
    tok, model = client.get_tokenizer(), client.engine.model
    questions = ["12+35=", "a much longer question: 100+200=", "9+9=", "1+2+3=", "what is 7 times 8?", "4+4=", "66+1=", "a third, long one: 31+41+59="]
    prompts = [prompt_tokens(tok, [{"role": "user", "content": q}]) for q in questions]

    def run(stops=frozenset(), **kw):
        out = sample_batch(
            model, prompts, num_samples, max_tokens=20, temperature=temperature, top_k=-1, top_p=1.0,
            stop_token_ids=stops, stop_strings=["sum"], decode=lambda t: tok.decode(t),
            generators=[torch.Generator().manual_seed(s) for s in range(10, 10 + len(prompts))], pad_token_id=tok.pad_token_id or 0, **kw,
        )
        assert [len(per_prompt) for per_prompt in out] == [num_samples] * len(prompts)
        return [g for per_prompt in out for g in per_prompt]

    free_run = run(compact=False)
    firsts = {g.tokens[0] for g in free_run}
    stops = set(sorted({t for g in free_run for t in g.tokens} - firsts)[::3])
    old = run(stops, compact=False)
    if temperature > 0:  # greedy rows of this model rarely stop: they still join as whole batches end
        assert len({len(g.tokens) for g in old}) >= 3, "the test needs varied lengths"
    forwards: list[tuple[int, int]] = []  # (rows, tokens per row) of every forward
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: forwards.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        new = run(stops, max_rows=max_rows, **({"check_every": check_every} if check_every else {}))
    finally:
        hook.remove()
    decode_rows = [rows for rows, width in forwards if width == 1]
    prefills = [rows for rows, width in forwards if width > 1]
    assert max(decode_rows) <= max(max_rows, num_samples)
    assert len(prefills) >= 3, "waiting prompts were prefilled as rows freed up"
    for a, b in zip(old, new):
        assert a.tokens == b.tokens and a.stop_reason == b.stop_reason
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_backend_row_limit_reaches_the_engine_and_bad_values_are_named(tmp_path):
    """``backend.max_batch_rows`` from conf/backend/local.yaml is what every engine of the service
    decodes at once; anything but a positive integer or null is refused naming the key."""
    from omegaconf import OmegaConf

    from tinkerx.backends.local import LocalBackend
    from tinkerx.models.tiny import TinyModel
    from tinkerx.paths import CONFIG_DIR

    default = OmegaConf.load(CONFIG_DIR / "backend" / "local.yaml").max_batch_rows
    assert isinstance(default, int) and default >= 64, "a GRPO step's rows should not all wait for one another by default"
    backend = LocalBackend(device="cpu", max_batch_rows=3)
    try:
        service = backend.open([TinyModel()], tmp_path)
        sampler = service.create_sampling_client(base_model="tinkerx/tiny")
        assert sampler.engine.max_batch_rows == 3
        futures = sampler.sample_many([types.ModelInput.from_ints([5, 6, i]) for i in range(5)], 2, types.SamplingParams(max_tokens=4, seed=1))
        assert [len(f.result().sequences) for f in futures] == [2] * 5
    finally:
        backend.close()
    for bad in (0, -2, 2.5, "many", True):
        with pytest.raises(ValueError, match=r"backend\.max_batch_rows must be a positive integer or null"):
            LocalBackend(max_batch_rows=bad)


def test_decode_loop_reads_device_values_only_at_its_checks():
    """On an accelerator every read of a device value by the host (``item``, ``tolist``, ``bool``...)
    waits for the device. The loop must read only at its chunked checks, and the model's forward
    must not read during decode steps (transformers tests a 2D padding mask for padding every step;
    the loop hands it a ready 4D mask). Counted here on CPU through torch's function hook."""
    from torch.overrides import TorchFunctionMode
    from transformers import LlamaConfig, LlamaForCausalLM

    from tinkerx.backends.local.generation import sample_batch

    reads_names = {"item", "tolist", "__bool__", "__int__", "__index__", "__float__", "nonzero", "cpu", "numpy", "equal"}

    class CountReads(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.in_decode_forward, self.in_loop, self.decode_forward = 0, 0, False

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in reads_names:
                if self.decode_forward:
                    self.in_decode_forward += 1
                else:
                    self.in_loop += 1
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=1, max_position_embeddings=128)).eval()
    counter = CountReads()

    def before(_, args, kwargs):
        counter.decode_forward = kwargs["input_ids"].shape[1] == 1

    def after(*_):
        counter.decode_forward = False

    hooks = [model.register_forward_pre_hook(before, with_kwargs=True), model.register_forward_hook(after)]
    max_tokens, check_every = 64, 16
    try:
        with counter:  # prompts of different lengths: padded rows, a mask every step
            out = sample_batch(model, [[1, 2, 3], [6, 7, 8, 9, 10, 11]], 2, max_tokens=max_tokens, temperature=1.0, top_k=0, top_p=1.0,
                               stop_token_ids={0}, stop_strings=[], decode=str, generators=[torch.Generator().manual_seed(i) for i in range(2)],
                               check_every=check_every)
    finally:
        for hook in hooks:
            hook.remove()
    assert sum(len(g.tokens) for per_prompt in out for g in per_prompt) > 2 * max_tokens  # rows did decode for many steps
    assert counter.in_decode_forward == 0
    assert counter.in_loop <= 3 * (max_tokens // check_every) + 12, counter.in_loop  # a few reads per check, not per token


def test_sampling_reads_the_kv_cache_by_its_current_name(tiny_service, monkeypatch):
    """transformers 5.x renamed ``past_key_values`` to ``cache`` and logs (through its logger, not
    ``warnings``, so ``-W error`` cannot see it) when the old name is read. Its log call is replaced
    here, because ``warning_once`` is silent after the first time in a process."""
    from transformers.utils import generic

    deprecations: list[str] = []
    monkeypatch.setattr(generic.logger, "warning_once", lambda message, *a, **k: deprecations.append(message))
    client = tiny_service.create_lora_training_client("tinkerx/tiny", rank=0, seed=1).result()
    tok = client.get_tokenizer()
    instruction = "Answer with a number only, no words at all, please. "  # a shared prefix: the prefix-sharing prefill path too
    prompts = [types.ModelInput.from_ints(prompt_tokens(tok, [{"role": "user", "content": instruction + q}])) for q in ("1+2=", "30+4=")]
    futures = client.save_weights_and_get_sampling_client().sample_many(prompts, 2, types.SamplingParams(max_tokens=4, temperature=1.0, seed=0))
    assert all(len(f.result().sequences) == 2 for f in futures)
    assert not [m for m in deprecations if "past_key_values" in m], deprecations

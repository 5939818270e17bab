"""The in-place KV cache layer holds exactly what transformers' DynamicLayer holds, op for op."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from tinkerx.backends.local import kv_cache
from tinkerx.backends.local.kv_cache import GrowingLayer


def _states(rows: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 2, length, 4, generator=g), torch.randn(rows, 2, length, 3, generator=g)


def _dynamic(keys: torch.Tensor, values: torch.Tensor) -> DynamicLayer:
    layer = DynamicLayer()
    layer.update(keys, values)
    return layer


def _same(growing: GrowingLayer, dynamic: DynamicLayer) -> None:
    assert torch.equal(growing.keys, dynamic.keys) and torch.equal(growing.values, dynamic.values)
    assert growing.get_seq_length() == dynamic.get_seq_length()
    assert growing.get_mask_sizes(1) == dynamic.get_mask_sizes(1)


def test_updates_past_the_room_grow_the_buffer_and_keep_every_token(monkeypatch):
    monkeypatch.setattr(kv_cache, "MIN_ROOM", 3)  # several regrowths within a short run
    keys, values = _states(4, 5, seed=0)
    growing, dynamic = GrowingLayer(keys, values), _dynamic(keys, values)
    buffers = set()
    for step in range(20):
        new_keys, new_values = _states(4, 1 + step % 2, seed=step + 1)
        returned = growing.update(new_keys, new_values)
        dynamic.update(new_keys, new_values)
        assert returned[0] is growing.keys
        _same(growing, dynamic)
        buffers.add(growing._keys_buffer.data_ptr())
    assert 1 < len(buffers) < 20  # it regrew, but not on every step (writes are in place)


def test_row_selection_repeat_and_crop_match_the_dynamic_layer():
    keys, values = _states(3, 6, seed=1)
    growing, dynamic = GrowingLayer(keys, values), _dynamic(keys, values)
    for layer in (growing, dynamic):
        layer.batch_repeat_interleave(2)
        layer.batch_select_indices(torch.tensor([5, 0, 3, 1]))
        layer.reorder_cache(torch.tensor([3, 0, 2]))
        layer.crop(-2)
    _same(growing, dynamic)
    new = _states(3, 1, seed=2)
    growing.update(*new)
    dynamic.update(*new)
    _same(growing, dynamic)
    with pytest.raises(ValueError, match="negative"):
        growing.crop(1)
    for layer in (growing, dynamic):  # reset, then a fresh start
        layer.reset()
        layer.update(*new)
    _same(growing, dynamic)


def test_dropping_leading_columns_and_joining_rows_left_pad_with_zeros():
    keys, values = _states(2, 7, seed=3)
    growing = GrowingLayer(keys, values)
    growing.drop_leading(3)
    assert torch.equal(growing.keys, keys[:, :, 3:])
    other_keys, other_values = _states(3, 2, seed=4)
    growing.join(GrowingLayer(other_keys, other_values), width=5)
    expected_keys = torch.cat([torch.nn.functional.pad(keys[:, :, 3:], (0, 0, 1, 0)), torch.nn.functional.pad(other_keys, (0, 0, 3, 0))])
    expected_values = torch.cat([torch.nn.functional.pad(values[:, :, 3:], (0, 0, 1, 0)), torch.nn.functional.pad(other_values, (0, 0, 3, 0))])
    assert torch.equal(growing.keys, expected_keys) and torch.equal(growing.values, expected_values)
    new = _states(5, 1, seed=5)
    growing.update(*new)
    assert torch.equal(growing.keys[:, :, -1:], new[0]) and growing.get_seq_length() == 6


def test_the_sampler_decodes_with_growing_layers_and_the_loop_as_it_was_without(monkeypatch):
    from tinkerx.backends.local import generation

    seen: dict[bool, set[type]] = {}
    real_prefill_rows = generation._prefill_rows

    def spy(*args, **kwargs):
        rows = real_prefill_rows(*args, **kwargs)
        seen.setdefault(kwargs["grow_in_place"], set()).update(type(layer) for layer in rows.cache.layers)
        return rows

    monkeypatch.setattr(generation, "_prefill_rows", spy)
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)).eval()
    for compact in (True, False):
        generation.sample_batch(model, [[1, 2, 3], [4, 5]], 2, max_tokens=4, temperature=1.0, top_k=0, top_p=1.0,
                                stop_token_ids=set(), stop_strings=[], decode=str,
                                generators=[torch.Generator().manual_seed(i) for i in range(2)], compact=compact)
    assert seen == {True: {GrowingLayer}, False: {DynamicLayer}}

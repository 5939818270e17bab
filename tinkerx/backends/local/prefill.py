"""The prefill: one forward over a batch of prompts that leaves their KV cache for decoding.

Prompts of a batch often open with the same tokens -- the chat template's header and system
prompt, a task instruction, few-shot examples -- and those tokens get the same keys and values in
every row. With ``share_prefix`` the prefix they all share is run once, its cache copied to every
row, and only the rest of each prompt runs over the batch (``vLLM``'s prefix caching, within one
call). Each row's cache is then ``[shared prefix][left padding][its own tokens]``; positions count
the real tokens only, so every row gets the keys, values and logits it gets when prefilled alone.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch

# A shared prefix shorter than this is run with the rest: a second forward costs more than it saves.
MIN_SHARED_PREFIX = 8


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens at the start of every row, leaving each row at least one token of its own (the last
    token's logits come from the forward over the rest)."""
    if len(rows) < 2:
        return 0
    return min(len(os.path.commonprefix([list(r) for r in rows])), min(len(r) for r in rows) - 1)


def prefill(model: torch.nn.Module, rows: Sequence[Sequence[int]], pad_token_id: int, device: torch.device,
            share_prefix: bool = False) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs ``rows``, left-padded: (cache, last logits [rows, vocab], mask [rows, cache length],
    positions [rows, columns run], the last column being each row's last token)."""
    shared = shared_prefix_length(rows) if share_prefix else 0
    if shared >= MIN_SHARED_PREFIX:
        prefix = torch.tensor([list(rows[0][:shared])], dtype=torch.long, device=device)
        cache = output_cache(model(input_ids=prefix, use_cache=True, logits_to_keep=1))
        if hasattr(cache, "batch_repeat_interleave"):
            cache.batch_repeat_interleave(len(rows))
            input_ids, own_mask, own_positions = _left_padded([r[shared:] for r in rows], pad_token_id, device)
            mask = torch.cat([own_mask.new_ones((len(rows), shared)), own_mask], dim=-1)
            positions = own_positions + shared
            out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=1, **cache_kwarg(model, cache))
            return cache, out.logits[:, -1, :].float(), mask, positions
        # A cache that cannot be copied row-wise: run every row whole, as below.
    input_ids, mask, positions = _left_padded(rows, pad_token_id, device)
    kwargs = {"attention_mask": mask, "position_ids": positions} if bool((mask == 0).any()) else {}
    out = model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **kwargs)
    return output_cache(out), out.logits[:, -1, :].float(), mask, positions


def prefill_after(model: torch.nn.Module, rows: Sequence[Sequence[int]], pasts: Sequence[Any], pad_token_id: int,
                  device: torch.device) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``prefill`` for rows some of whose first tokens already have keys and values: ``pasts[i]``
    (a ``prefix_cache.CachedSequence``, or None) covers ``rows[i]``'s first ``pasts[i].length``
    tokens, and only the rest of each row runs. Each row's cache is ``[left padding][its kept
    keys/values][left padding][its new tokens]``, positions counting its real tokens, so a row gets
    what a whole prefill gives it. The cache's layers grow in place (kv_cache), made with room for
    the new tokens and the decode's first steps, so neither copies the kept part again."""
    from transformers import DynamicCache

    from tinkerx.backends.local.kv_cache import GrowingLayer, room_for

    kept = [0 if p is None else p.length for p in pasts]
    width = max(kept)
    input_ids, own_mask, own_positions = _left_padded([r[n:] for r, n in zip(rows, kept)], pad_token_id, device)
    past_mask = torch.zeros((len(rows), width), dtype=own_mask.dtype, device=device)
    for i, n in enumerate(kept):
        past_mask[i, width - n :] = 1
    mask = torch.cat([past_mask, own_mask], dim=-1)
    positions = own_positions + torch.tensor(kept, dtype=torch.long, device=device)[:, None]
    some = next(p for p in pasts if p is not None)
    layers = []
    for index, (k, v) in enumerate(zip(some.keys, some.values)):
        keys = k.new_zeros((len(rows), k.shape[0], width, k.shape[-1]))
        values = v.new_zeros((len(rows), v.shape[0], width, v.shape[-1]))
        for i, past in enumerate(pasts):
            if past is not None:
                keys[i, :, width - past.length :] = past.keys[index]
                values[i, :, width - past.length :] = past.values[index]
        layers.append(GrowingLayer(keys, values, room=input_ids.shape[1] + room_for(width + input_ids.shape[1])))
    cache = DynamicCache(config=model.config)
    cache.layers = layers
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=1, **cache_kwarg(model, cache))
    return cache, out.logits[:, -1, :].float(), mask, positions


def output_cache(out: Any) -> Any:
    """A forward's KV cache: ``out.cache`` in transformers 5.x, ``out.past_key_values`` before.

    Reading the old name on 5.x works but logs a deprecation warning; the field list says which
    name this version's output declares, without touching the deprecated property.
    """
    declared = getattr(out, "__dataclass_fields__", {})
    return out.cache if "cache" in declared else out.past_key_values


def cache_kwarg(model: torch.nn.Module, cache: object) -> dict[str, object]:
    """transformers renamed ``past_key_values`` to ``cache`` (5.x); pass whichever this model takes.

    A peft model's ``forward`` passes ``**kwargs`` through, so the name is read from the model it
    wraps (the old name still works on 5.x but warns on every forward of a LoRA run).
    """
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"
    return {name: cache, "use_cache": True}


def _left_padded(rows: Sequence[Sequence[int]], pad_token_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(token ids, mask, positions counted from each row's first real token) of the left-padded rows."""
    n, width = len(rows), max(len(r) for r in rows)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros((n, width), dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        input_ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long, device=device)
        mask[i, width - len(r) :] = 1
    return input_ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)

"""Packing supervised datums: several short examples in one row, none seeing another.

A packed datum is the examples' datums concatenated (inputs, targets, weights) plus a
``segment_ids`` loss input numbering the example each position belongs to. The local engine turns
the segment ids into a block-diagonal causal mask and positions that restart at each example
(``tinkerx.backends.local.rows.packed_attention``), so every position's logprob, the loss and its
gradients are the unpacked ones: packing only removes padding. Tinker's service has no way to carry
the boundaries, which is why build.py refuses ``training.packing`` on ``backend=tinker``.

Packing is done per step, on the step's own examples: a step trains on the same examples with the
same loss whether packed or not, so ``training.batch_size`` keeps its meaning (examples per step).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinkerx.backends.local.rows import SEGMENTS


def pack_bins(lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """Indices grouped into rows of at most ``max_length`` tokens, first fit by decreasing length.

    A longer example keeps a row of its own (the length rule upstream decides whether it may exist).
    Within a row the examples keep their batch order, so packing is deterministic.
    """
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(max_length - lengths[i])
    return [sorted(b) for b in bins]


def pack_datums(data: Sequence[Any], max_length: int) -> list[Any]:
    """Cross-entropy datums (``target_tokens``, ``weights``) packed into rows of at most ``max_length`` tokens.

    A row of one example is returned unchanged (it needs no boundaries).
    """
    from tinker import types

    packed = []
    for members in pack_bins([d.model_input.length for d in data], max_length):
        if len(members) == 1:
            packed.append(data[members[0]])
            continue
        tokens: list[int] = []
        targets: list[int] = []
        weights: list[float] = []
        segments: list[int] = []
        for segment, i in enumerate(members):
            d = data[i]
            unknown = set(d.loss_fn_inputs) - {"target_tokens", "weights"}
            if unknown:
                raise ValueError(f"only cross-entropy datums can be packed; this one has {', '.join(sorted(unknown))}")
            n = d.model_input.length
            tokens += d.model_input.to_ints()
            targets += d.loss_fn_inputs["target_tokens"].tolist()
            weights += d.loss_fn_inputs["weights"].tolist()
            segments += [segment] * n
        packed.append(types.Datum(
            model_input=types.ModelInput.from_ints(tokens),
            # An array, not a list: the SDK types lists by key, and segment_ids is no key of Tinker's.
            loss_fn_inputs={"target_tokens": targets, "weights": weights, SEGMENTS: np.asarray(segments, dtype=np.int64)},
        ))
    return packed

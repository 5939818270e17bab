"""A KV cache layer that grows in place, for the decode loop.

transformers' ``DynamicLayer`` appends each step's keys and values with ``torch.cat``, which copies the
whole cache every token: at 64 rows of a few hundred positions that copy costs as much as a sixth of
a decode step on a CPU. This layer keeps the keys and values in a buffer with room past their end;
a step writes its token in place and the layer exposes views of the filled part, so a copy happens
only when the room runs out (the buffer then grows by a share of its length), when rows leave the
batch, or when rows join it.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

# Room added when the buffer is full: this share of the filled length, and at least MIN_ROOM
# positions, so copies stay rare (one per MIN_ROOM steps at most) and the unused room small.
ROOM_SHARE = 0.25
MIN_ROOM = 32


def room_for(length: int) -> int:
    """Free positions a buffer of ``length`` filled positions is given."""
    return max(MIN_ROOM, int(length * ROOM_SHARE))


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``keys`` / ``values`` are views into larger buffers.

    Everything that reads a dynamic layer (attention, mask sizes, sequence length) sees the same
    tensors as before; only ``update`` and the batch operations differ, and their results are equal
    to the dynamic layer's.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int | None = None) -> None:
        super().__init__()
        self._place(keys, values, room_for(keys.shape[-2]) if room is None else room)

    @classmethod
    def replace_layers(cls, cache: object) -> None:
        """Swaps every layer of a plain dynamic cache for a growing one holding the same tensors."""
        cache.layers = [cls(layer.keys, layer.values) for layer in cache.layers]

    def _place(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
        """New buffers holding ``keys`` / ``values`` with ``room`` free positions after them."""
        batch, heads, length, dim = keys.shape
        self.device, self.is_initialized = keys.device, True
        self._keys_buffer = keys.new_empty((batch, heads, length + room, dim))
        self._values_buffer = values.new_empty((batch, values.shape[1], length + room, values.shape[-1]))
        self._keys_buffer[:, :, :length] = keys
        self._values_buffer[:, :, :length] = values
        self._start, self._end = 0, length
        self._expose()

    def _expose(self) -> None:
        self.keys = self._keys_buffer[:, :, self._start : self._end]
        self.values = self._values_buffer[:, :, self._start : self._end]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        new = key_states.shape[-2]
        if not self.is_initialized:  # after reset(), as a dynamic layer starts afresh
            self._place(key_states, value_states, room_for(new))
            return self.keys, self.values
        if self._end + new > self._keys_buffer.shape[-2]:
            self._place(self.keys, self.values, max(new, room_for(self._end - self._start)))
        self._keys_buffer[:, :, self._end : self._end + new] = key_states
        self._values_buffer[:, :, self._end : self._end + new] = value_states
        self._end += new
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._end - self._start

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of tokens to remove, got {tokens_to_remove}")
        self._end = max(self._start, self._end - abs(tokens_to_remove))
        self._expose()

    def drop_leading(self, count: int) -> None:
        """Forgets the first ``count`` positions of every row (no copy: the views move)."""
        self._start = min(self._end, self._start + count)
        self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._keys_buffer = self._keys_buffer.repeat_interleave(repeats, dim=0)
        self._values_buffer = self._values_buffer.repeat_interleave(repeats, dim=0)
        self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys_buffer = self._keys_buffer[indices]
        self._values_buffer = self._values_buffer[indices]
        self._expose()

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        self.batch_select_indices(beam_idx.to(self._keys_buffer.device))

    def reset(self) -> None:
        super().reset()
        self._keys_buffer = self._values_buffer = None
        self._start = self._end = 0

    def join(self, other: "GrowingLayer", width: int) -> None:
        """Appends ``other``'s rows after this layer's; both are left-padded with zeros to ``width``
        positions (the caller masks the padding; zeros keep masked attention finite)."""
        rows = self.keys.shape[0] + other.keys.shape[0]
        shape = (rows, self.keys.shape[1], width + room_for(width), self.keys.shape[-1])
        keys, values = self.keys.new_zeros(shape), self.values.new_zeros(shape[:-1] + (self.values.shape[-1],))
        for buffer, mine, theirs in ((keys, self.keys, other.keys), (values, self.values, other.values)):
            buffer[: mine.shape[0], :, width - mine.shape[-2] : width] = mine
            buffer[mine.shape[0] :, :, width - theirs.shape[-2] : width] = theirs
        self._keys_buffer, self._values_buffer = keys, values
        self._start, self._end = 0, width
        self._expose()

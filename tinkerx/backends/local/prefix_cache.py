"""KV caches of finished sequences, kept across sampling calls (automatic prefix caching).

A multi-turn episode's next prompt is its last prompt + what the policy sampled + the new
observation's tokens. After a sampling call every finished row's keys and values (prompt + sampled
tokens) are kept here, keyed by those tokens; a later prompt that starts with a kept sequence
reuses them, and only its new tokens are prefilled. A whole kept sequence must be a prefix of the
new prompt (the way an episode grows), leaving at least one token of its own to run (the next
token's logits come from that forward). A one-turn prompt never starts with a finished sequence,
so one-turn sampling never hits and its numerics are those without the cache.

Keys and values depend on the weights that computed them: the cache serves one weights version at
a time (``bind``) and empties itself when a call comes with other weights (after an optimizer
step, a loaded checkpoint, or a sampling client of another version). It is bounded by the tokens
it holds, least recently used sequences leaving first.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import torch

# Sequences shorter than this are not kept: their prefill costs less than the lookups.
MIN_KEPT_TOKENS = 8
# Polynomial hash of token prefixes (mod a Mersenne prime): one pass over a prompt gives the hash
# of every prefix, so a lookup checks each kept length in O(1) instead of hashing a slice per length.
_MOD = (1 << 61) - 1
_BASE = 1_000_003


def prefix_hashes(tokens: Sequence[int], upto: int) -> list[int]:
    """``hashes[n]``: the hash of ``tokens[:n]``, for n in 0..upto."""
    hashes, h = [0], 0
    for t in tokens[:upto]:
        h = (h * _BASE + int(t) + 1) % _MOD
        hashes.append(h)
    return hashes


@dataclass
class CachedSequence:
    tokens: list[int]
    keys: list[torch.Tensor]  # per layer: [kv heads, len(tokens), head dim]
    values: list[torch.Tensor]

    @property
    def length(self) -> int:
        return len(self.tokens)


class PrefixCache:
    """Finished sequences' KV caches, LRU by total tokens held (``max_tokens``; 0 keeps nothing)."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self._entries: "collections.OrderedDict[tuple[int, int], CachedSequence]" = collections.OrderedDict()
        self._lengths: collections.Counter[int] = collections.Counter()  # kept sequence lengths -> how many
        self._weights: Hashable = None
        self.cached_tokens = 0
        self.counters = dict.fromkeys(("lookups", "hits", "tokens_saved", "evicted"), 0)
        self._read: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.max_tokens > 0

    def bind(self, weights: Hashable) -> None:
        """Serve the weights identified by ``weights``: what other weights computed is dropped."""
        if weights != self._weights:
            self.clear()
            self._weights = weights

    def clear(self) -> None:
        self._entries.clear()
        self._lengths.clear()
        self.cached_tokens = 0

    def lookup(self, prompt: Sequence[int]) -> CachedSequence | None:
        """The longest kept sequence that ``prompt`` starts with and extends by at least one token."""
        if not self.enabled:
            return None
        self.counters["lookups"] += 1
        usable = [n for n in self._lengths if n < len(prompt)]
        if not usable:
            return None
        hashes = prefix_hashes(prompt, max(usable))
        for n in sorted(usable, reverse=True):
            entry = self._entries.get((n, hashes[n]))
            if entry is not None and entry.tokens == list(prompt[:n]):  # a hash collision is a miss
                self._entries.move_to_end((n, hashes[n]))
                self.counters["hits"] += 1
                self.counters["tokens_saved"] += n
                return entry
        return None

    def would_keep(self, length: int) -> bool:
        return self.enabled and MIN_KEPT_TOKENS <= length <= self.max_tokens

    def put(self, tokens: list[int], keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        if not self.would_keep(len(tokens)):
            return
        key = (len(tokens), prefix_hashes(tokens, len(tokens))[-1])
        if key in self._entries:
            self._drop(key)
        self._entries[key] = CachedSequence(tokens, keys, values)
        self._lengths[len(tokens)] += 1
        self.cached_tokens += len(tokens)
        while self.cached_tokens > self.max_tokens:
            self._drop(next(iter(self._entries)))
            self.counters["evicted"] += 1

    def _drop(self, key: tuple[int, int]) -> None:
        entry = self._entries.pop(key)
        self._lengths[entry.length] -= 1
        if not self._lengths[entry.length]:
            del self._lengths[entry.length]
        self.cached_tokens -= entry.length

    def counts_since_last_read(self) -> dict[str, int]:
        """The counters' growth since this was last called (what a step's metrics report)."""
        delta = {name: value - self._read.get(name, 0) for name, value in self.counters.items()}
        self._read = dict(self.counters)
        return delta

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "sequences": len(self._entries), "cached_tokens": self.cached_tokens}

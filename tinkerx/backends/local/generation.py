"""Batched sampling with a KV cache.

All samples of a request, and all prompts of a ``sample_many`` call, decode together: a prefill,
then a single forward over the batch per new token; finished rows leave the batch and, when the
batch has a row limit, waiting prompts take their place (continuous batching). Log-probabilities
returned are those of the unmodified model (temperature 1, no top-k/top-p), which is what the
trainer computes for the same tokens, so importance ratios start at exactly 1 on-policy.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from tinkerx.backends.local.prefill import cache_kwarg, prefill, prefill_after
from tinkerx.backends.local.prefix_cache import PrefixCache

# Uniforms are drawn for this many decode steps at a time: one draw per prompt per block, and a
# bounded buffer however large max_tokens is.
DRAW_BLOCK = 256
# On an accelerator the host checks for finished rows every this many steps, not every token.
CHECK_EVERY_ON_ACCELERATOR = 16
# Finished rows leave the decode batch once they are at least this share of it. Removing rows copies
# every layer's KV cache; doing that for each row as it stops costs more than decoding a few rows
# whose extra tokens are cut anyway.
COMPACT_SHARE = 0.125


@dataclass
class Generated:
    tokens: list[int]
    logprobs: list[float]
    stop_reason: str  # "stop" | "length"


def _filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    logits = logits / temperature
    if top_k and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token once the mass before it already reaches top_p (the first token always stays).
        drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@dataclass
class _DecodeRows:
    """The rows in the decode batch: their KV cache and, per row, everything the next step needs."""

    cache: Any
    logits: torch.Tensor  # [rows, vocab]: the next token's logits
    mask: torch.Tensor  # [rows, cache length]: 0 on left padding
    next_position: torch.Tensor  # [rows, 1]: position id of the next token, counted from the row's first real token
    row_ids: torch.Tensor  # [rows]: index of each row among all rows of the call
    steps: torch.Tensor  # [rows]: tokens each row has sampled so far
    uniforms: torch.Tensor | None  # [rows, DRAW_BLOCK]: each row's draws for its current block of steps

    def select(self, keep: torch.Tensor) -> None:
        self.cache.batch_select_indices(keep)
        for name in ("logits", "mask", "next_position", "row_ids", "steps", "uniforms"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])

    def trim(self) -> None:
        """Drops the cache's leading columns that are padding in every row. Rows that joined late
        are left-padded to the batch's length; once the rows older than them leave, those columns
        would otherwise stay, and every step would attend over (and copy) them."""
        first = int(self.mask.any(0).int().argmax())
        if first == 0:
            return
        for layer in self.cache.layers:  # growing layers: only called where rows can join (_can_join)
            layer.drop_leading(first)
        self.mask = self.mask[:, first:]

    def extend(self, other: "_DecodeRows") -> None:
        """Appends ``other``'s rows: both caches are left-padded to the longer one and concatenated."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.join(theirs, width)
        self.mask = torch.cat([_left_pad(self.mask, width, dim=-1), _left_pad(other.mask, width, dim=-1)])
        for name in ("logits", "next_position", "row_ids", "steps", "uniforms"):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, None if mine is None else torch.cat([mine, theirs]))


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _is_plain_dynamic(cache: Any) -> bool:
    """A plain dynamic KV cache (no sliding windows, no static buffers, no linear-attention state):
    its layers are just key/value tensors growing along the sequence, which is what lets them grow
    in place and rows join a running batch."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _can_join(cache: Any) -> bool:
    from tinkerx.backends.local.kv_cache import GrowingLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is GrowingLayer for layer in layers)


@torch.no_grad()
def sample_batch(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    num_samples: int,
    *,
    max_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    stop_token_ids: set[int],
    stop_strings: Sequence[str],
    decode: Callable[[list[int]], str],
    generators: Sequence[torch.Generator],
    pad_token_id: int = 0,
    compact: bool = True,
    check_every: int | None = None,
    compact_share: float = COMPACT_SHARE,
    max_rows: int | None = None,
    prefix_cache: PrefixCache | None = None,
) -> list[list[Generated]]:
    """``num_samples`` completions of each prompt, decoded together; one list per prompt.

    Prompts of different lengths are left-padded and masked, with positions counted from each
    row's first real token, so a row's result does not depend on its neighbours' lengths. Each
    prompt draws its samples from its own generator, indexed by the row's own step, so a prompt
    sampled in a batch gets the same tokens as the same prompt sampled alone with the same seed,
    whenever it joins the batch.

    Finished rows leave the decode batch (``compact``) once they are ``compact_share`` of it: with
    varied lengths most row-steps would otherwise go to rows that already stopped. At most
    ``max_rows`` rows decode at once (None: all); the other prompts wait and are prefilled into the
    running batch as rows finish (continuous batching), so a large batch neither holds every row's
    KV cache at once nor waits for its longest row before the next prompts start. Tokens and
    logprobs are written into device buffers and stops are detected on the device; the host looks
    at them only every ``check_every`` steps (every step on CPU, where it costs nothing; in chunks
    on an accelerator, so the loop does not wait for the device once per token). Tokens a row
    samples after its end, before the next check, are cut off: the results are those of checking
    every step. ``compact=False`` is the loop as it was: every row from the start to the end.

    With a ``prefix_cache`` (and ``compact``), a prompt that extends a sequence kept there by an
    earlier call prefills only its new tokens, and every row's finished sequence (prompt + sampled
    tokens) is kept there as it leaves the batch, for the next turn of its episode.
    """
    if len(generators) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts need as many generators, got {len(generators)}")
    device = next(model.parameters()).device
    check_every = check_every or (1 if device.type == "cpu" else CHECK_EVERY_ON_ACCELERATOR)
    n = len(prompts) * num_samples
    max_rows = n if not compact or not max_rows else max_rows
    waiting = collections.deque(range(len(prompts)))  # prompts not yet in the batch, in order
    # Rows may run up to check_every - 1 steps past their end before the host sees it.
    tokens_N_T = torch.zeros((n, max_tokens + check_every), dtype=torch.long, device=device)
    logprobs_N_T = torch.zeros((n, max_tokens + check_every), dtype=torch.float32, device=device)
    stop_step_N = torch.full((n,), -1, dtype=torch.long, device=device)  # first step a stop token came out
    stop_ids = torch.tensor(sorted(stop_token_ids), dtype=torch.long, device=device)
    checked = [0] * n  # stop strings: steps of each row already searched
    redraws: dict[int, list[int]] = collections.defaultdict(list)  # step -> prompts whose next block of draws starts then
    at_cap: set[int] = set()  # steps at which some rows sample their last allowed token: the host must look then
    keeps = prefix_cache if compact and prefix_cache is not None and prefix_cache.enabled else None

    def leave(batch: _DecodeRows, where: list[int]) -> None:
        """Rows ``where`` of the batch are finished and leave it: their sequences go to the prefix cache."""
        if keeps is not None and where and _can_join(batch.cache):
            _keep_sequences(keeps, batch, where, prompts, num_samples, tokens_N_T, stop_step_N, max_tokens)

    def admit(count: int, step: int) -> _DecodeRows:
        """Prefills the next ``count`` waiting prompts; their first token is sampled at ``step``."""
        chosen = [waiting.popleft() for _ in range(count)]
        pasts = [keeps.lookup(prompts[p]) for p in chosen] if keeps is not None else None
        rows = _prefill_rows(model, [prompts[p] for p in chosen], num_samples, pad_token_id, device, grow_in_place=compact, pasts=pasts)
        rows.row_ids = torch.tensor([p * num_samples + s for p in chosen for s in range(num_samples)], device=device)
        rows.steps = torch.zeros(len(rows.row_ids), dtype=torch.long, device=device)
        if temperature > 0:
            rows.uniforms = torch.cat([_draw_block(generators[p], 0, max_tokens, num_samples, device) for p in chosen])
            for block_start in range(DRAW_BLOCK, max_tokens, DRAW_BLOCK):
                redraws[step + block_start] += chosen
        at_cap.add(step + max_tokens - 1)
        return rows

    def redraw(batch: _DecodeRows, chosen: list[int]) -> None:
        prompt_of_row = batch.row_ids // num_samples
        for p in chosen:
            where = (prompt_of_row == p).nonzero().squeeze(-1)
            if len(where):  # rows of this prompt that ended may have left the batch: each keeps its own sample's draws
                block = _draw_block(generators[p], int(batch.steps[where[0]]), max_tokens, num_samples, device)
                batch.uniforms[where] = block[batch.row_ids[where] % num_samples]

    per_prompt = max(1, max_rows // num_samples)  # prompts decoding at once (one at least, whatever num_samples)
    batch = admit(min(per_prompt, len(waiting)), 0)
    can_compact = compact and hasattr(batch.cache, "batch_select_indices")
    can_join = can_compact and _can_join(batch.cache)
    # The padding mask of a decode step, given to the model ready-made ([rows, 1, 1, cache], True
    # where a row attends) where every layer is full attention through SDPA: from a 2D mask the model
    # builds its own, and tests on the way whether any row is padded -- a host sync every token on an
    # accelerator. Other attention implementations and layer types take the 2D mask.
    ready_mask = can_join and getattr(getattr(model, "config", None), "_attn_implementation", None) == "sdpa"
    padded = bool((batch.mask == 0).any())
    step = 0
    while True:
        logp = torch.log_softmax(batch.logits, dim=-1)
        if temperature <= 0:
            next_ids = batch.logits.argmax(dim=-1)
        else:
            if step in redraws:  # every row's uniforms come from its prompt's stream at the row's own step
                redraw(batch, redraws.pop(step))
            probs = torch.softmax(_filter_logits(batch.logits, temperature, top_k, top_p), dim=-1)
            column = (batch.steps % DRAW_BLOCK)[:, None]
            next_ids = _inverse_cdf(probs, batch.uniforms.gather(1, column).squeeze(-1))
        rows, steps = batch.row_ids, batch.steps
        # Rows that ended stay in the batch until enough of them can leave together; what they sample
        # meanwhile lands past their end (the last column takes it all) and is cut off.
        columns = steps.clamp(max=max_tokens + check_every - 1)
        tokens_N_T[rows, columns] = next_ids
        logprobs_N_T[rows, columns] = logp.gather(-1, next_ids[:, None]).squeeze(-1)
        hit = torch.isin(next_ids, stop_ids) & (stop_step_N[rows] < 0)
        stop_step_N[rows] = torch.where(hit, steps, stop_step_N[rows])
        keep, joining = None, 0
        if step in at_cap or (step + 1) % check_every == 0:
            at_cap.discard(step)
            if stop_strings:
                _find_stop_strings(decode, stop_strings, tokens_N_T, stop_step_N, rows, steps, checked, max_tokens)
            running = (stop_step_N[rows] < 0) & (steps < max_tokens - 1)
            live = int(running.sum())
            if live == 0 and not waiting:
                leave(batch, list(range(len(rows))))
                break  # no forward for a token nobody will sample
            free = max_rows - live
            if waiting and live == 0:
                joining = min(len(waiting), max(1, free // num_samples))
            elif waiting and can_join and free >= num_samples and free >= compact_share * max_rows:
                joining = min(len(waiting), free // num_samples)
            finished = len(rows) - live
            if can_compact and finished and (finished >= compact_share * len(rows) or joining):
                keep = running.nonzero().squeeze(-1)
            if live == 0:  # everything decoding has ended: the waiting prompts start a fresh batch
                leave(batch, list(range(len(rows))))
                batch, step = admit(joining, step + 1), step + 1
                padded = bool((batch.mask == 0).any())
                continue
        if keep is not None:
            leave(batch, (~running).nonzero().squeeze(-1).tolist())
            batch.select(keep)
            next_ids = next_ids[keep]
            if can_join:
                batch.trim()
        # The mask grows with the cache while the model needs it (some row has left padding) or rows
        # may still join (they are aligned to it); an unpadded batch with nothing waiting skips it.
        if padded or (can_join and waiting):
            batch.mask = torch.cat([batch.mask, torch.ones((batch.mask.shape[0], 1), dtype=batch.mask.dtype, device=device)], dim=-1)
        step_kwargs = {"attention_mask": batch.mask[:, None, None, :].bool() if ready_mask else batch.mask} if padded else {}
        out = model(input_ids=next_ids[:, None], position_ids=batch.next_position, **cache_kwarg(model, batch.cache), **step_kwargs)
        batch.next_position = batch.next_position + 1
        batch.steps = batch.steps + 1
        batch.logits = out.logits[:, -1, :].float()
        step += 1
        if joining:
            batch.extend(admit(joining, step))
            padded = True
    stops, tokens, logprobs = stop_step_N.tolist(), tokens_N_T.tolist(), logprobs_N_T.tolist()
    results = []
    for row in range(n):
        stopped = 0 <= stops[row] < max_tokens
        end = stops[row] + 1 if stopped else max_tokens
        results.append(Generated(tokens[row][:end], logprobs[row][:end], "stop" if stopped else "length"))
    return [results[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]


def _find_stop_strings(
    decode: Callable[[list[int]], str], stop_strings: Sequence[str], tokens_N_T: torch.Tensor, stop_step_N: torch.Tensor,
    rows: torch.Tensor, steps: torch.Tensor, checked: list[int], max_tokens: int,
) -> None:
    """Marks the first step at which each row's text ends with a stop string (host side)."""
    for row, stop, step in zip(rows.tolist(), stop_step_N[rows].tolist(), steps.tolist()):
        upto = min(stop if stop >= 0 else step, max_tokens - 1)  # a stop token earlier in the chunk bounds the search
        row_tokens = tokens_N_T[row, : upto + 1].tolist()
        for t in range(checked[row], upto + 1):
            if _ends_with_stop(decode, row_tokens[: t + 1], stop_strings):
                stop_step_N[row] = t
                break
        checked[row] = max(checked[row], upto + 1)


def _draw_block(generator: torch.Generator, row_step: int, max_tokens: int, num_samples: int, device: torch.device) -> torch.Tensor:
    """[num_samples, DRAW_BLOCK] uniforms in [0, 1) for a prompt's rows, from the block of steps that
    starts at ``row_step``: one draw of ``min(DRAW_BLOCK, steps left)`` x ``num_samples`` from the
    prompt's own generator, so the stream is the same whenever the prompt joins the batch."""
    steps = min(DRAW_BLOCK, max_tokens - row_step)
    block = torch.rand((steps, num_samples), generator=generator, dtype=torch.float64, device=device).T
    return torch.nn.functional.pad(block, (0, DRAW_BLOCK - steps))  # zero columns past the last step


def _inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One token per row: the first whose cumulative probability exceeds the row's uniform draw.

    The same distribution as ``torch.multinomial(probs, 1)``, but one batched op for all prompts
    instead of a call per prompt generator (which cost up to 15% of a decode step). The sum runs in
    float64, as multinomial's does on CPU, so tail tokens of a large vocabulary keep their odds;
    tokens filtered to probability 0 have empty intervals and are never drawn.
    """
    cdf = probs.double().cumsum(dim=-1)
    ids = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True).squeeze(-1)
    return ids.clamp_(max=probs.shape[-1] - 1)


def _prefill_rows(model: torch.nn.Module, prompts: Sequence[Sequence[int]], num_samples: int, pad_token_id: int, device: torch.device,
                  grow_in_place: bool = True, pasts: Sequence[Any] | None = None) -> _DecodeRows:
    """Prefills ``prompts`` once each and copies each prompt's cache rows ``num_samples`` times
    (a prefill of B copies of a prompt costs up to a sixth of a whole sample(num_samples=B) call).
    With ``grow_in_place`` the prompts' shared prefix is run once (see prefill) and a plain dynamic
    cache becomes one that grows in place (see kv_cache); without, the prefill as it was. Prompts
    with a kept sequence in ``pasts`` (prefix_cache) prefill only their tokens after it."""
    if pasts is not None and any(p is not None for p in pasts):
        cache, logits, mask, positions = prefill_after(model, prompts, pasts, pad_token_id, device)
    else:
        cache, logits, mask, positions = prefill(model, prompts, pad_token_id, device, share_prefix=grow_in_place)
    if num_samples > 1 and hasattr(cache, "batch_repeat_interleave"):
        cache.batch_repeat_interleave(num_samples)
        logits, mask, positions = (t.repeat_interleave(num_samples, dim=0) for t in (logits, mask, positions))
    elif num_samples > 1:  # a cache type that cannot be copied row-wise: prefill every row
        rows = [p for p in prompts for _ in range(num_samples)]
        cache, logits, mask, positions = prefill(model, rows, pad_token_id, device, share_prefix=grow_in_place)
    if grow_in_place and _is_plain_dynamic(cache):
        from tinkerx.backends.local.kv_cache import GrowingLayer

        GrowingLayer.replace_layers(cache)
    empty = torch.empty(0, dtype=torch.long, device=device)
    return _DecodeRows(cache, logits, mask, positions[:, -1:] + 1, empty, empty, None)


def _keep_sequences(keeps: PrefixCache, batch: _DecodeRows, where: list[int], prompts: Sequence[Sequence[int]], num_samples: int,
                    tokens_N_T: torch.Tensor, stop_step_N: torch.Tensor, max_tokens: int) -> None:
    """Copies the finished rows ``where``'s keys and values into the prefix cache, keyed by their
    prompt + sampled tokens.

    A row's cache holds its prompt and every token it has fed back (``steps``; the token sampled last
    has not run yet), its real columns being the mask's ones (all columns when no row is padded:
    the mask then stops growing). A row that ran on past its end (rows leave the batch together)
    fed tokens after its stop token: those are cut, and its sampled tokens up to the stop kept.
    """
    layers = batch.cache.layers
    length = layers[0].keys.shape[-2]
    picked = torch.tensor(where, device=batch.row_ids.device)
    row_ids = batch.row_ids[picked]
    fed, stops, sampled = batch.steps[picked].tolist(), stop_step_N[row_ids].tolist(), tokens_N_T[row_ids].tolist()
    tracks = batch.mask.shape[1] == length
    for j, row, fed_j, stop, sampled_j in zip(where, row_ids.tolist(), fed, stops, sampled):
        prompt = prompts[row // num_samples]
        kept_sampled = min(fed_j, stop + 1 if 0 <= stop < max_tokens else max_tokens)
        if not keeps.would_keep(len(prompt) + kept_sampled):
            continue
        columns = batch.mask[j].nonzero().squeeze(-1) if tracks else torch.arange(length, device=batch.mask.device)
        if len(columns) != len(prompt) + fed_j:  # not the layout described above: keep nothing rather than something wrong
            continue
        columns = columns[: len(prompt) + kept_sampled]
        keeps.put(list(prompt) + sampled_j[:kept_sampled], [layer.keys[j][:, columns] for layer in layers],
                  [layer.values[j][:, columns] for layer in layers])


def _ends_with_stop(decode: Callable[[list[int]], str], row_tokens: list[int], stop_strings: Sequence[str]) -> bool:
    # Only the tail can complete a stop string; decoding a bounded window keeps this O(1) per token.
    window = max(len(s) for s in stop_strings) + 8
    tail = decode(row_tokens[-window:])
    return any(s in tail for s in stop_strings)

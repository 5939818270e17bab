"""Batched sampling with a KV cache.

All samples of a request, and all prompts of a ``sample_many`` call, decode as one batch: one
prefill, then a single forward over the batch per new token. Log-probabilities
returned are those of the unmodified model (temperature 1, no top-k/top-p), which is what the
trainer computes for the same tokens, so importance ratios start at exactly 1 on-policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch


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
) -> list[list[Generated]]:
    """``num_samples`` completions of each prompt, all decoded together; one list per prompt.

    Prompts of different lengths are left-padded and masked, with positions counted from each
    row's first real token, so a row's result does not depend on its neighbours' lengths. Each
    prompt draws its samples from its own generator, so a prompt sampled in a batch gets the same
    tokens as the same prompt sampled alone with the same seed.

    Finished rows leave the decode batch (``compact``) once they are ``compact_share`` of it: with
    varied lengths most row-steps would otherwise go to rows that already stopped. Tokens and logprobs are written into device buffers
    and stops are detected on the device; the host looks at them only every ``check_every`` steps
    (every step on CPU, where it costs nothing; in chunks on an accelerator, so the loop does not
    wait for the device once per token). Tokens a row samples after its stop, before the next
    check, are cut off: the results are those of checking every step.
    """
    if len(generators) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts need as many generators, got {len(generators)}")
    device = next(model.parameters()).device
    check_every = check_every or (1 if device.type == "cpu" else CHECK_EVERY_ON_ACCELERATOR)
    n = len(prompts) * num_samples
    # The samples of a prompt share its prefill: run each prompt once, then copy its cache rows
    # (a prefill of B copies of a prompt costs up to a sixth of a whole sample(num_samples=B) call).
    cache, logits, mask, positions, padded = _prefill(model, prompts, pad_token_id, device)
    if num_samples > 1 and hasattr(cache, "batch_repeat_interleave"):
        cache.batch_repeat_interleave(num_samples)
        logits, mask, positions = (t.repeat_interleave(num_samples, dim=0) for t in (logits, mask, positions))
    elif num_samples > 1:  # a cache type that cannot be copied row-wise: prefill every row
        rows = [p for p in prompts for _ in range(num_samples)]
        cache, logits, mask, positions, padded = _prefill(model, rows, pad_token_id, device)
    compact = compact and hasattr(cache, "batch_select_indices")
    next_position = positions[:, -1:] + 1

    tokens_N_T = torch.zeros((n, max_tokens), dtype=torch.long, device=device)
    logprobs_N_T = torch.zeros((n, max_tokens), dtype=torch.float32, device=device)
    stop_step_N = torch.full((n,), -1, dtype=torch.long, device=device)  # first step a stop token came out
    stop_ids = torch.tensor(sorted(stop_token_ids), dtype=torch.long, device=device)
    active = torch.arange(n, device=device)  # the original rows still in the decode batch
    checked = [0] * n  # stop strings: steps of each row already searched
    last_step = 0
    for step in range(max_tokens):
        last_step = step
        logp = torch.log_softmax(logits, dim=-1)
        if temperature <= 0:
            next_ids = logits.argmax(dim=-1)
        else:
            if step % DRAW_BLOCK == 0:  # every row's uniforms are drawn, finished or not: the same streams as ever
                uniforms = _draw_uniforms(generators, min(DRAW_BLOCK, max_tokens - step), num_samples, device)
            probs = torch.softmax(_filter_logits(logits, temperature, top_k, top_p), dim=-1)
            next_ids = _inverse_cdf(probs, uniforms[step % DRAW_BLOCK][active])
        tokens_N_T[active, step] = next_ids
        logprobs_N_T[active, step] = logp.gather(-1, next_ids[:, None]).squeeze(-1)
        hit = torch.isin(next_ids, stop_ids) & (stop_step_N[active] < 0)
        stop_step_N[active] = torch.where(hit, step, stop_step_N[active])
        final = step == max_tokens - 1
        if not final and (step + 1) % check_every:
            keep = None  # between checks: finished rows stay in, their extra tokens are cut later
        else:
            if stop_strings:
                _find_stop_strings(decode, stop_strings, tokens_N_T, stop_step_N, active, checked, step)
            running = stop_step_N[active] < 0
            if final or not bool(running.any()):
                break  # no forward for a token nobody will sample
            finished = len(active) - int(running.sum())
            keep = running.nonzero().squeeze(-1) if compact and finished and finished >= compact_share * len(active) else None
        if keep is not None:
            active, next_ids, next_position = active[keep], next_ids[keep], next_position[keep]
            cache.batch_select_indices(keep)
            if padded:
                mask = mask[keep]
        step_kwargs = {}
        if padded:
            mask = torch.cat([mask, torch.ones((mask.shape[0], 1), dtype=mask.dtype, device=device)], dim=-1)
            step_kwargs["attention_mask"] = mask
        out = model(input_ids=next_ids[:, None], position_ids=next_position, **cache_kwarg(model, cache), **step_kwargs)
        next_position = next_position + 1
        logits = out.logits[:, -1, :].float()
    stops, tokens, logprobs = stop_step_N.tolist(), tokens_N_T.tolist(), logprobs_N_T.tolist()
    results = []
    for row in range(n):
        end = stops[row] + 1 if stops[row] >= 0 else last_step + 1
        results.append(Generated(tokens[row][:end], logprobs[row][:end], "stop" if stops[row] >= 0 else "length"))
    return [results[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]


def cache_kwarg(model: torch.nn.Module, cache: object) -> dict[str, object]:
    """transformers renamed ``past_key_values`` to ``cache`` (5.x); pass whichever this model takes."""
    import inspect

    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {name: cache, "use_cache": True}


def _find_stop_strings(
    decode: Callable[[list[int]], str], stop_strings: Sequence[str], tokens_N_T: torch.Tensor, stop_step_N: torch.Tensor,
    active: torch.Tensor, checked: list[int], step: int,
) -> None:
    """Marks the first step at which each active row's text ends with a stop string (host side)."""
    rows = active.tolist()
    stops = stop_step_N[active].tolist()
    for row, stop in zip(rows, stops):
        upto = stop if stop >= 0 else step  # a stop token earlier in the chunk bounds the search
        row_tokens = tokens_N_T[row, : upto + 1].tolist()
        for t in range(checked[row], upto + 1):
            if _ends_with_stop(decode, row_tokens[: t + 1], stop_strings):
                stop_step_N[row] = t
                break
        checked[row] = upto + 1


def _draw_uniforms(generators: Sequence[torch.Generator], steps: int, num_samples: int, device: torch.device) -> torch.Tensor:
    """[steps, rows] uniforms in [0, 1); each prompt's columns come from its own generator only."""
    return torch.cat([torch.rand((steps, num_samples), generator=g, dtype=torch.float64, device=device) for g in generators], dim=1)


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


def _prefill(model: torch.nn.Module, rows: Sequence[Sequence[int]], pad_token_id: int, device: torch.device):
    """One forward over the left-padded ``rows``: (cache, last logits, mask, positions, padded)."""
    n, width = len(rows), max(len(r) for r in rows)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros((n, width), dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        input_ids[i, width - len(r) :] = torch.tensor(list(r), device=device)
        mask[i, width - len(r) :] = 1
    padded = bool((mask == 0).any())
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    kwargs = {"attention_mask": mask, "position_ids": positions} if padded else {}
    out = model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **kwargs)
    return out.past_key_values, out.logits[:, -1, :].float(), mask, positions, padded


def _ends_with_stop(decode: Callable[[list[int]], str], row_tokens: list[int], stop_strings: Sequence[str]) -> bool:
    # Only the tail can complete a stop string; decoding a bounded window keeps this O(1) per token.
    window = max(len(s) for s in stop_strings) + 8
    tail = decode(row_tokens[-window:])
    return any(s in tail for s in stop_strings)

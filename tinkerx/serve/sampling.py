"""Sampling endpoints: sampling sessions and ``asample``.

Each sampling client numbers its requests; they reach the backend in that order (see ``lanes``) and
a resubmitted ``seq_id`` (a retry after a lost reply) gets the first submission's answer.
"""

from __future__ import annotations

import asyncio

from tinker import types

from tinkerx.serve import codec
from tinkerx.serve.context import Context, as_future
from tinkerx.serve.lanes import Lane
from tinkerx.serve.registry import Sampler
from tinkerx.serve.store import Result

_UNSUPPORTED = ("topk_prompt_logprobs", "topk_sample_logprobs", "prompt_alt_tokens_k")
# The SDK gives each clone of a sampling client its own block of a billion seq_ids.
_CLONE_BLOCK = 1_000_000_000


async def create_sampling_session(ctx: Context, body: dict) -> dict:
    req = types.CreateSamplingSessionRequest.model_validate(body)
    sampler_id = f"{req.session_id}:sample:{req.sampling_session_seq_id}"
    if sampler_id not in ctx.registry.samplers:
        local = ctx.registry.checkpoint(req.model_path)["local_path"] if req.model_path else None
        base_model = req.base_model or ctx.base_model

        def create():
            return as_future(ctx.service.create_sampling_client(model_path=local, base_model=base_model)).result()

        # Loading weights blocks; keep it off the event loop so polls and heartbeats keep flowing.
        client = await asyncio.get_running_loop().run_in_executor(ctx.submit_pool, create)
        ctx.registry.samplers[sampler_id] = Sampler(sampler_id, client, base_model, req.model_path)
    return {"type": "create_sampling_session", "sampling_session_id": sampler_id}


async def get_sampler(ctx: Context, sampler_id: str) -> dict:
    sampler = _sampler(ctx, sampler_id)
    return {"sampler_id": sampler.sampler_id, "base_model": sampler.base_model, "model_path": sampler.model_path}


async def asample(ctx: Context, body: dict) -> dict:
    req = types.SampleRequest.model_validate(body)
    for name in _UNSUPPORTED:
        if getattr(req, name):
            raise ValueError(f"{name} is not supported by tinkerx serve")
    if req.target_prompt_logprobs is not None or req.prompt_logprobs_last_n is not None:
        raise ValueError("target_prompt_logprobs and prompt_logprobs_last_n are not supported by tinkerx serve")
    if req.sampling_session_id is None or req.seq_id is None:
        raise ValueError("asample needs a sampling_session_id and seq_id (create a sampling client first)")
    sampler = _sampler(ctx, req.sampling_session_id)
    key = (sampler.sampler_id, req.seq_id)
    if key not in ctx.registry.submitted:
        request_id = ctx.store.new("sample")

        def start():
            return sampler.client.sample(
                req.prompt, req.num_samples, req.sampling_params, include_prompt_logprobs=bool(req.prompt_logprobs)
            )

        finish = lambda out: Result(proto=codec.encode_sample_response(out))  # noqa: E731
        block = req.seq_id // _CLONE_BLOCK
        lane = sampler.lanes.setdefault(block, Lane(block * _CLONE_BLOCK, gap_timeout_s=10.0))
        lane.add(req.seq_id, lambda: ctx.execute(request_id, start, finish))
        ctx.registry.submitted[key] = {
            "request_id": request_id,
            # Sequence identity is fixed at submission; the SDK stamps these onto the results.
            "sample_sequence_ids": [f"{request_id}/{i}" for i in range(req.num_samples)],
        }
    return ctx.registry.submitted[key]


def _sampler(ctx: Context, sampler_id: str) -> Sampler:
    if sampler_id not in ctx.registry.samplers:
        raise KeyError(f"unknown sampling session {sampler_id!r}")
    return ctx.registry.samplers[sampler_id]

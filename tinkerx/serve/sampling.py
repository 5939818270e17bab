"""Sampling endpoints: sampling sessions and ``asample``.

Each sampling client numbers its requests; they reach the scheduler in that order (see ``lanes``),
which decodes them batched with other clients' (see ``scheduler``). A resubmitted ``seq_id`` (a
retry after a lost reply) gets the first submission's answer.
"""

from __future__ import annotations

import asyncio

from tinker import types

from tinkerx.serve import codec, limits
from tinkerx.serve.context import Context, as_future
from tinkerx.serve.lanes import Lane
from tinkerx.serve.registry import Sampler, digest
from tinkerx.serve.scheduler import Job
from tinkerx.serve.store import Result

_UNSUPPORTED = ("topk_prompt_logprobs", "topk_sample_logprobs", "prompt_alt_tokens_k")
# The SDK gives each clone of a sampling client its own block of a billion seq_ids.
_CLONE_BLOCK = 1_000_000_000


async def create_sampling_session(ctx: Context, body: dict) -> dict:
    req = types.CreateSamplingSessionRequest.model_validate(body)
    ctx.registry.touch(req.session_id)
    sampler_id = f"{req.session_id}:sample:{req.sampling_session_seq_id}"
    if sampler_id not in ctx.registry.samplers:
        local = ctx.registry.local_path(req.model_path) if req.model_path else None
        base_model = req.base_model or ctx.base_model

        def create():
            return as_future(ctx.service.create_sampling_client(model_path=local, base_model=base_model)).result()

        # Loading weights blocks; keep it off the event loop so polls and heartbeats keep flowing.
        client = await asyncio.get_running_loop().run_in_executor(ctx.submit_pool, create)
        ctx.registry.samplers[sampler_id] = Sampler(sampler_id, client, base_model, req.model_path)
    return {"type": "create_sampling_session", "sampling_session_id": sampler_id}


async def get_sampler(ctx: Context, body: dict) -> dict:
    sampler = _sampler(ctx, body["sampler_id"])
    return {"sampler_id": sampler.sampler_id, "base_model": sampler.base_model, "model_path": sampler.model_path}


async def asample(ctx: Context, body: dict) -> dict:
    try:
        return _asample(ctx, body)
    except Exception:
        # A refused request uses up its number: the client's later requests must not wait for it.
        sampler, seq_id = ctx.registry.samplers.get(body.get("sampling_session_id")), body.get("seq_id")
        if sampler is not None and isinstance(seq_id, int):
            _lane(sampler, seq_id).skip(seq_id)
        raise


def _lane(sampler: Sampler, seq_id: int) -> Lane:
    block = seq_id // _CLONE_BLOCK
    return sampler.lanes.setdefault(block, Lane(block * _CLONE_BLOCK, gap_timeout_s=10.0))


def _asample(ctx: Context, body: dict) -> dict:
    req = types.SampleRequest.model_validate(body)
    if req.sampling_session_id is None or req.seq_id is None:
        raise ValueError("asample needs a sampling_session_id and seq_id (create a sampling client first)")
    sampler = _sampler(ctx, req.sampling_session_id)
    lane = _lane(sampler, req.seq_id)

    def make() -> dict:
        _check(ctx, req, sampler)
        request_id = ctx.store.new("sample")
        lane.add(req.seq_id, lambda: _enqueue(ctx, sampler, req, request_id))
        # Sequence identity is fixed at submission; the SDK stamps these onto the results.
        return {"request_id": request_id, "sample_sequence_ids": [f"{request_id}/{i}" for i in range(req.num_samples)]}

    return ctx.registry.submit_once((sampler.sampler_id, req.seq_id), digest(body), make)


def _check(ctx: Context, req: types.SampleRequest, sampler: Sampler) -> None:
    for name in _UNSUPPORTED:
        if getattr(req, name):
            raise ValueError(f"{name} is not supported by tinkerx serve")
    if req.target_prompt_logprobs is not None or req.prompt_logprobs_last_n is not None:
        raise ValueError("target_prompt_logprobs and prompt_logprobs_last_n are not supported by tinkerx serve")
    limits.check_sample(req, req.prompt.to_ints(), ctx.config, limits.shape_of(sampler.client))


async def _enqueue(ctx: Context, sampler: Sampler, req: types.SampleRequest, request_id: str) -> None:
    """Runs in the lane's order, so seeds are drawn in the order a local run draws them."""
    client = sampler.client
    seed = req.sampling_params.seed if req.sampling_params.seed is not None else client.service.next_seed()
    prompt = req.prompt.to_ints()

    async def finish(response: types.SampleResponse) -> Result:
        if req.prompt_logprobs:
            logprobs = await asyncio.wrap_future(client.compute_logprobs(req.prompt))
            response = types.SampleResponse(sequences=response.sequences, _prompt_logprobs_list=logprobs)
        return Result(proto=codec.encode_sample_response(response))

    session_id = sampler.sampler_id.split(":")[0]
    ctx.scheduler.submit(Job(request_id, session_id, client, prompt, req.num_samples, req.sampling_params, seed, finish))


def _sampler(ctx: Context, sampler_id: str) -> Sampler:
    if sampler_id not in ctx.registry.samplers:
        raise KeyError(f"unknown sampling session {sampler_id!r}")
    ctx.registry.touch(sampler_id.split(":")[0])
    return ctx.registry.samplers[sampler_id]

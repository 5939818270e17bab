"""Training endpoints: create a model, run forward/backward and optimizer steps, save and load.

Each answers Tinker's ``UntypedAPIFuture`` (a request id the client then polls). Requests that
carry a ``seq_id`` go through the model's lane, so they apply in the client's order, and a
resubmitted ``seq_id`` (a retry after a lost reply) gets the first submission's answer.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from tinker import types

from tinkerx.serve import codec
from tinkerx.serve.context import Context, as_future
from tinkerx.serve.lanes import Lane
from tinkerx.serve.registry import Model, Sampler
from tinkerx.serve.store import Result


def _submit_once(ctx: Context, key: tuple[str, int], make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    if key not in ctx.registry.submitted:
        ctx.registry.submitted[key] = make()
    return ctx.registry.submitted[key]


def _in_order(ctx: Context, model: Model, seq_id: int, op: str, start, finish) -> dict[str, Any]:
    def make() -> dict[str, Any]:
        request_id = ctx.store.new(op)
        model.lane.add(seq_id, lambda: ctx.execute(request_id, start, finish, model, op))
        return {"request_id": request_id, "model_id": model.model_id}

    return _submit_once(ctx, (model.model_id, seq_id), make)


def _model(ctx: Context, model_id: str) -> Model:
    if model_id not in ctx.registry.models:
        raise KeyError(f"unknown model_id {model_id!r}")
    return ctx.registry.models[model_id]


def _register(ctx: Context, model_id: str, client: Any, rank: int | None) -> None:
    # The create (or create-via-load) was request 0, so the client's next seq_id is 1.
    ctx.registry.add_model(Model(model_id, client, ctx.base_model, rank, Lane(next_seq=1)))


async def create_model(ctx: Context, body: dict) -> dict:
    req = types.CreateModelRequest.model_validate(body)
    if req.base_model != ctx.base_model:
        raise ValueError(f"this server serves {ctx.base_model!r}, not {req.base_model!r}")
    if req.lora_config is None:
        raise ValueError("tinkerx serve trains LoRA adapters: lora_config is required")
    lora = req.lora_config
    model_id = f"{req.session_id}:train:{req.model_seq_id}"
    # Only non-default switches are passed on, so a backend without them still accepts the call.
    switches = {k: False for k in ("train_mlp", "train_attn", "train_unembed") if not getattr(lora, k)}

    def start():
        return ctx.service.create_lora_training_client(req.base_model, rank=lora.rank, seed=lora.seed, **switches)

    def finish(client) -> Result:
        _register(ctx, model_id, client, lora.rank)
        return Result(json={"model_id": model_id, "type": "create_model"})

    def make() -> dict:
        request_id = ctx.store.new("create_model")
        _spawn(ctx.execute(request_id, start, finish))
        return {"request_id": request_id, "model_id": model_id}

    return _submit_once(ctx, (model_id, 0), make)


async def get_info(ctx: Context, body: dict) -> dict:
    model = _model(ctx, types.GetInfoRequest.model_validate(body).model_id)
    return {
        "type": "get_info",
        "model_id": model.model_id,
        "model_data": {"model_name": model.base_model, "tokenizer_id": model.base_model},
        "is_lora": model.rank is None or model.rank > 0,
        "lora_rank": model.rank,
        "model_name": model.base_model,
    }


async def forward_backward(ctx: Context, body: bytes) -> dict:
    call = codec.decode_forward_backward(body)
    model = _model(ctx, call.model_id)
    op = "forward" if call.forward_only else "forward_backward"

    def start():
        method = model.client.forward if call.forward_only else model.client.forward_backward
        return method(call.data, call.loss_fn, call.loss_fn_config)

    return _in_order(ctx, model, call.seq_id, op, start, lambda out: Result(proto=codec.encode_forward_backward_output(out)))


async def optim_step(ctx: Context, body: dict) -> dict:
    req = types.OptimStepRequest.model_validate(body)
    if not isinstance(req.optim_params, types.AdamParams):
        raise ValueError("tinkerx serve implements Adam only")
    model = _model(ctx, req.model_id)

    def finish(out) -> Result:
        return Result(json=out.model_dump(mode="json") if hasattr(out, "model_dump") else {"metrics": None})

    return _in_order(ctx, model, req.seq_id, "optim_step", lambda: model.client.optim_step(req.optim_params), finish)


async def save_weights(ctx: Context, body: dict) -> dict:
    req = types.SaveWeightsRequest.model_validate(body)
    model = _model(ctx, req.model_id)
    name = req.path or f"state-{req.seq_id}"

    def finish(out) -> Result:
        path = ctx.registry.add_checkpoint(model, "weights", name, out.path)
        return Result(json={"path": path, "type": "save_weights"})

    return _in_order(ctx, model, req.seq_id, "save_weights", lambda: model.client.save_state(name), finish)


async def save_weights_for_sampler(ctx: Context, body: dict) -> dict:
    req = types.SaveWeightsForSamplerRequest.model_validate(body)
    model = _model(ctx, req.model_id)
    if req.path is not None:
        def finish(out) -> Result:
            path = ctx.registry.add_checkpoint(model, "sampler_weights", req.path, out.path)
            return Result(json={"path": path, "type": "save_weights_for_sampler"})

        start = lambda: model.client.save_weights_for_sampler(req.path)  # noqa: E731
    else:
        # save_weights_and_get_sampling_client: an unnamed snapshot that is a sampling session at once.
        session_id = model.model_id.split(":train:")[0]
        sampler_id = f"{session_id}:sample:{req.sampling_session_seq_id}"

        def finish(client) -> Result:
            ctx.registry.samplers[sampler_id] = Sampler(sampler_id, client, model.base_model, None)
            return Result(json={"sampling_session_id": sampler_id, "type": "save_weights_for_sampler"})

        start = lambda: as_future(model.client.save_weights_and_get_sampling_client())  # noqa: E731
    return _in_order(ctx, model, req.seq_id, "save_weights_for_sampler", start, finish)


async def load_weights(ctx: Context, body: dict) -> dict:
    req = types.LoadWeightsRequest.model_validate(body)
    checkpoint = ctx.registry.checkpoint(req.path)
    local = checkpoint["local_path"]
    if req.session_id is not None:
        # Create-via-load: the load is the new model's first request.
        model_id = f"{req.session_id}:train:{req.model_seq_id}"
        create = (
            ctx.service.create_training_client_from_state_with_optimizer
            if req.optimizer
            else ctx.service.create_training_client_from_state
        )

        def finish_new(client) -> Result:
            _register(ctx, model_id, client, checkpoint.get("rank"))
            return Result(json={"path": req.path, "model_id": model_id, "type": "load_weights"})

        def make() -> dict:
            request_id = ctx.store.new("load_weights")
            _spawn(ctx.execute(request_id, lambda: create(local), finish_new))
            return {"request_id": request_id, "model_id": model_id}

        return _submit_once(ctx, (model_id, 0), make)

    model = _model(ctx, req.model_id)
    load = model.client.load_state_with_optimizer if req.optimizer else model.client.load_state

    def finish(_out) -> Result:
        return Result(json={"path": req.path, "model_id": model.model_id, "type": "load_weights"})

    return _in_order(ctx, model, req.seq_id, "load_weights", lambda: load(local), finish)


def _spawn(coro) -> None:
    asyncio.get_running_loop().create_task(coro)

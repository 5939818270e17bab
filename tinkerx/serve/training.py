"""Training endpoints: create a model, run forward/backward and optimizer steps, save and load.

Each answers Tinker's ``UntypedAPIFuture`` (a request id the client then polls). Requests that
carry a ``seq_id`` go through the model's lane, so they apply in the client's order, and a
resubmitted ``seq_id`` (a retry after a lost reply) gets the first submission's answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tinker import types

from tinkerx.serve import codec, limits
from tinkerx.serve.context import Context, as_future
from tinkerx.serve.lanes import Lane
from tinkerx.serve.registry import Model, Sampler, digest
from tinkerx.serve.security import check_checkpoint_name
from tinkerx.serve.store import Result


def numbered(handler):
    """A handler of requests numbered by the client (``model_id`` + ``seq_id``).

    When the request is refused (bad body, bad values, unknown checkpoint), its number is used up
    all the same, so the client's later requests do not wait for one that will never come.
    """

    async def handle(ctx: Context, body: Any) -> dict[str, Any]:
        try:
            return await handler(ctx, body)
        except Exception:
            skip_numbered(ctx, body)
            raise

    return handle


def skip_numbered(ctx: Context, body: Any) -> None:
    """Mark the request's ``seq_id`` as used, if it names a model and a number."""
    model_id, seq_id = _numbering(body)
    model = ctx.registry.models.get(model_id) if isinstance(model_id, str) else None
    if model is not None and isinstance(seq_id, int):
        model.lane.skip(seq_id)


def _numbering(body: Any) -> tuple[Any, Any]:
    if isinstance(body, dict):
        return body.get("model_id"), body.get("seq_id")
    try:
        return codec.numbering_of_forward_backward(body)
    except Exception:
        return None, None


def _in_order(ctx: Context, model: Model, seq_id: int, op: str, body_digest: str, prepare) -> dict[str, Any]:
    """Queue ``prepare()``'s (start, finish) as the model's request ``seq_id``; ``prepare`` checks
    the request, once: a resubmission of the same body gets the first answer."""

    def make() -> dict[str, Any]:
        start, finish = prepare()
        request_id = ctx.store.new(op)
        model.lane.add(seq_id, lambda: ctx.execute(request_id, start, finish, model, op))
        return {"request_id": request_id, "model_id": model.model_id}

    return ctx.registry.submit_once((model.model_id, seq_id), body_digest, make)


def _model(ctx: Context, model_id: str) -> Model:
    if model_id not in ctx.registry.models:
        raise KeyError(f"unknown model_id {model_id!r}")
    ctx.registry.touch(model_id.split(":")[0])
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
    limits.check_lora(lora)
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

    ctx.registry.touch(req.session_id)
    return ctx.registry.submit_once((model_id, 0), digest(body), make)


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


@numbered
async def forward_backward(ctx: Context, body: bytes) -> dict:
    call = codec.decode_forward_backward(body)
    model = _model(ctx, call.model_id)
    op = "forward" if call.forward_only else "forward_backward"

    def prepare():
        limits.check_data(call.data, limits.shape_of(model.client))
        method = model.client.forward if call.forward_only else model.client.forward_backward
        start = lambda: method(call.data, call.loss_fn, call.loss_fn_config)  # noqa: E731
        return start, lambda out: Result(proto=codec.encode_forward_backward_output(out))

    return _in_order(ctx, model, call.seq_id, op, digest(codec.canonical_forward_backward(body)), prepare)


@numbered
async def optim_step(ctx: Context, body: dict) -> dict:
    req = types.OptimStepRequest.model_validate(body)
    model = _model(ctx, req.model_id)

    def prepare():
        if not isinstance(req.optim_params, types.AdamParams):
            raise ValueError(f"tinkerx serve implements Adam only, not {type(req.optim_params).__name__}")
        limits.check_adam(req.optim_params)
        return lambda: model.client.optim_step(req.optim_params), finish

    def finish(out) -> Result:
        return Result(json=out.model_dump(mode="json") if hasattr(out, "model_dump") else {"metrics": None})

    return _in_order(ctx, model, req.seq_id, "optim_step", digest(body), prepare)


@numbered
async def save_weights(ctx: Context, body: dict) -> dict:
    req = types.SaveWeightsRequest.model_validate(body)
    model = _model(ctx, req.model_id)
    name = req.path if req.path is not None else f"state-{req.seq_id}"

    def prepare():
        check_checkpoint_name(name)
        return lambda: model.client.save_state(name), finish

    def finish(out) -> Result:
        path = ctx.registry.add_checkpoint(model, "weights", name, out.path)
        return Result(json={"path": path, "type": "save_weights"})

    return _in_order(ctx, model, req.seq_id, "save_weights", digest(body), prepare)


@numbered
async def save_weights_for_sampler(ctx: Context, body: dict) -> dict:
    req = types.SaveWeightsForSamplerRequest.model_validate(body)
    model = _model(ctx, req.model_id)
    if req.path is not None:
        name = req.path

        def finish(out) -> Result:
            path = ctx.registry.add_checkpoint(model, "sampler_weights", name, out.path)
            return Result(json={"path": path, "type": "save_weights_for_sampler"})

        def prepare():
            check_checkpoint_name(name)
            return lambda: model.client.save_weights_for_sampler(name), finish
    else:
        # save_weights_and_get_sampling_client: an unnamed snapshot that is a sampling session at once.
        session_id = model.model_id.split(":train:")[0]
        sampler_id = f"{session_id}:sample:{req.sampling_session_seq_id}"

        def finish(client) -> Result:
            ctx.registry.samplers[sampler_id] = Sampler(sampler_id, client, model.base_model, None)
            return Result(json={"sampling_session_id": sampler_id, "type": "save_weights_for_sampler"})

        def prepare():
            return lambda: as_future(model.client.save_weights_and_get_sampling_client()), finish

    return _in_order(ctx, model, req.seq_id, "save_weights_for_sampler", digest(body), prepare)


@numbered
async def load_weights(ctx: Context, body: dict) -> dict:
    req = types.LoadWeightsRequest.model_validate(body)
    if req.session_id is not None:
        checkpoint = ctx.registry.checkpoint(req.path)
        local = ctx.registry.local_path(req.path)
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

        ctx.registry.touch(req.session_id)
        return ctx.registry.submit_once((model_id, 0), digest(body), make)

    model = _model(ctx, req.model_id)
    load = model.client.load_state_with_optimizer if req.optimizer else model.client.load_state

    def prepare():
        local = ctx.registry.local_path(req.path)
        return lambda: load(local), finish

    def finish(_out) -> Result:
        return Result(json={"path": req.path, "model_id": model.model_id, "type": "load_weights"})

    return _in_order(ctx, model, req.seq_id, "load_weights", digest(body), prepare)


def _spawn(coro) -> None:
    asyncio.get_running_loop().create_task(coro)

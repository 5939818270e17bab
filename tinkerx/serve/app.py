"""The HTTP surface: Tinker's ``/api/v1`` endpoints, routed to the backend.

Only what the unmodified SDK calls is served. Bodies are JSON except ``forward_backward``
(protobuf, zstd-compressed when the client config asks); long operations answer a future id.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import pydantic
from google.protobuf.message import DecodeError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tinkerx.serve import codec, openai_api, sampling, training
from tinkerx.serve.context import Context
from tinkerx.serve.faults import FaultInjector


def build_app(ctx: Context) -> Starlette:
    faults = FaultInjector(ctx.config)

    def endpoint(handler: Callable[..., Awaitable[Any]], raw: bool = False):
        async def route(request: Request) -> Response:
            async def handle() -> Response:
                try:
                    if "sampler_id" in request.path_params:
                        return _answer(await handler(ctx, request.path_params["sampler_id"]))
                    body = await request.body()
                    if raw:
                        body = codec.decompress(body, request.headers.get("content-encoding"))
                    else:
                        body = json.loads(body or b"{}")
                    return _answer(await handler(ctx, body))
                except KeyError as exc:
                    return JSONResponse({"detail": str(exc.args[0] if exc.args else exc)}, 404)
                except (ValueError, pydantic.ValidationError, DecodeError) as exc:
                    return JSONResponse({"detail": str(exc)}, 400)

            return await faults.around(request, handle)

        return route

    routes = [
        Route("/api/v1/healthz", endpoint(_healthz), methods=["GET"]),
        Route("/api/v1/get_server_capabilities", endpoint(_capabilities), methods=["GET"]),
        Route("/api/v1/client/config", endpoint(_client_config), methods=["POST"]),
        Route("/api/v1/client/dynamic_config", endpoint(_dynamic_config), methods=["POST"]),
        Route("/api/v1/create_session", endpoint(_create_session), methods=["POST"]),
        Route("/api/v1/session_heartbeat", endpoint(_heartbeat), methods=["POST"]),
        Route("/api/v1/sessions/{session_id}/finish", _finish_route(ctx), methods=["POST"]),
        Route("/api/v1/telemetry", endpoint(_telemetry), methods=["POST"]),
        Route("/api/v1/create_model", endpoint(training.create_model), methods=["POST"]),
        Route("/api/v1/get_info", endpoint(training.get_info), methods=["POST"]),
        Route("/api/v1/forward_backward", endpoint(training.forward_backward, raw=True), methods=["POST"]),
        Route("/api/v1/forward", endpoint(training.forward_backward, raw=True), methods=["POST"]),
        Route("/api/v1/optim_step", endpoint(training.optim_step), methods=["POST"]),
        Route("/api/v1/save_weights", endpoint(training.save_weights), methods=["POST"]),
        Route("/api/v1/save_weights_for_sampler", endpoint(training.save_weights_for_sampler), methods=["POST"]),
        Route("/api/v1/load_weights", endpoint(training.load_weights), methods=["POST"]),
        Route("/api/v1/create_sampling_session", endpoint(sampling.create_sampling_session), methods=["POST"]),
        Route("/api/v1/samplers/{sampler_id:path}", endpoint(sampling.get_sampler), methods=["GET"]),
        Route("/api/v1/asample", endpoint(sampling.asample), methods=["POST"]),
        Route("/api/v1/retrieve_future", endpoint(_retrieve_future), methods=["POST"]),
        Route("/tinkerx/stats", _stats_route(ctx, faults), methods=["GET"]),
        *openai_api.routes(ctx, ctx.config.checkpoint),  # the OpenAI-compatible /v1 API
    ]
    return Starlette(routes=routes)


def _answer(value: Any) -> Response:
    return value if isinstance(value, Response) else JSONResponse(value)


async def _healthz(ctx: Context, body: dict) -> dict:
    return {"status": "ok"}


async def _capabilities(ctx: Context, body: dict) -> dict:
    return {"supported_models": [{"model_name": ctx.base_model, "trainable": True, "sampleable": True}]}


async def _client_config(ctx: Context, body: dict) -> dict:
    return {
        # httpx's own transport (not the Rust one) so vcrpy and proxies see every request.
        "use_pyqwest_transport": False,
        "pjwt_auth_enabled": False,
        "proto_compress_fwdbwd": ctx.config.compress_fwdbwd,
        "sample_use_retrieve_futures": False,
        "sample_join_sampling_session": False,
        "custom_loss_server_side": False,
    }


async def _dynamic_config(ctx: Context, body: dict) -> dict:
    return {"refresh_interval_sec": 3600, "sample_cancel_enabled": False}


async def _create_session(ctx: Context, body: dict) -> dict:
    return {"type": "create_session", "session_id": ctx.registry.new_session()}


async def _heartbeat(ctx: Context, body: dict) -> Any:
    status = ctx.registry.sessions.get(body.get("session_id", ""))
    if status is None:
        raise KeyError(f"unknown session {body.get('session_id')!r}")
    if status == "finished":  # 410 tells the SDK to stop its heartbeat loop
        return JSONResponse({"detail": "session finished"}, 410)
    return {"type": "session_heartbeat"}


async def _telemetry(ctx: Context, body: dict) -> dict:
    return {"status": "accepted"}


def _finish_route(ctx: Context):
    async def route(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        if session_id in ctx.registry.sessions:
            ctx.registry.finish_session(session_id)
        return JSONResponse(None)

    return route


async def _retrieve_future(ctx: Context, body: dict) -> Any:
    request_id = body["request_id"]
    if not ctx.store.known(request_id):
        raise KeyError(f"unknown request_id {request_id!r}")
    result = await ctx.store.wait(request_id, ctx.config.poll_hold_s)
    if result is None:
        return {"type": "try_again", "request_id": request_id, "queue_state": "active"}
    if result.error is not None:
        return {"error": result.error, "category": result.category}
    if result.proto is not None:
        return Response(result.proto, media_type=codec.PROTO_CONTENT_TYPE)
    return result.json


def _stats_route(ctx: Context, faults: FaultInjector):
    # Not part of Tinker: lets tests check that no step was lost or applied twice.
    async def route(request: Request) -> Response:
        return JSONResponse({"models": ctx.registry.ops, "faults": faults.counts, "samplers": len(ctx.registry.samplers)})

    return route

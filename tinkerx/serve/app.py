"""The HTTP surface: Tinker's ``/api/v1`` endpoints, routed to the backend.

What the unmodified SDK calls is served (``ROUTES``); any other ``/api/v1`` call answers 404 naming
it. Bodies are JSON objects except ``forward_backward`` (protobuf, zstd-compressed when the client
config asks); long operations answer a future id.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import pydantic
from google.protobuf.message import DecodeError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tinkerx.serve import codec, openai_api, rest, sampling, training
from tinkerx.serve.context import Context
from tinkerx.serve.faults import FaultInjector
from tinkerx.serve.http_errors import HttpError, TooLarge
from tinkerx.serve.security import key_is_valid


# Requests whose body is not JSON: forward_backward travels as (possibly zstd-compressed) protobuf.
_PROTOBUF = {"/api/v1/forward_backward", "/api/v1/forward"}


def endpoint(ctx: Context, faults: FaultInjector, handler: Callable[..., Awaitable[Any]]):
    """A route calling ``handler(ctx, body)``: the JSON body (a dict) for POST, path and query
    parameters for GET and DELETE, raw bytes for protobuf routes. Any failure becomes a one-line 4xx
    (a bug a one-line 500), never a dropped connection."""

    async def handle(request: Request) -> Response:
        try:
            ctx.start_background()
            return _answer(await handler(ctx, await _body(request, ctx.config.max_request_bytes)))
        except HttpError as exc:
            return _error(exc.status, exc.detail)
        except KeyError as exc:
            return _error(404, str(exc.args[0] if exc.args else exc))
        except (ValueError, pydantic.ValidationError, DecodeError) as exc:
            return _error(400, _one_line(exc))
        except Exception as exc:  # a bug: still one line, and the server goes on
            return _error(500, f"internal error: {type(exc).__name__}: {_one_line(exc)}")

    async def route(request: Request) -> Response:
        return await faults.around(request, lambda: handle(request))

    return route


async def _body(request: Request, max_bytes: int) -> Any:
    if request.method in ("GET", "DELETE"):
        return {**request.query_params, **request.path_params}
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"request body of {declared} bytes exceeds this server's limit of {max_bytes} bytes (server.max_request_bytes)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(f"request body exceeds this server's limit of {max_bytes} bytes (server.max_request_bytes)")
    if request.url.path in _PROTOBUF:
        return codec.decompress(bytes(body), request.headers.get("content-encoding"), max_bytes)
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise ValueError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"the body must be a JSON object, got {type(value).__name__}")
    return {**value, **request.path_params}


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']} ({exc.error_count()} error(s))"
    return " ".join(str(exc).split()) or type(exc).__name__


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status)


def build_app(ctx: Context) -> Starlette:
    faults = FaultInjector(ctx.config)
    routes = [Route(path, endpoint(ctx, faults, handler), methods=[method]) for method, path, handler in ROUTES]
    routes.append(Route("/tinkerx/stats", endpoint(ctx, faults, _stats(faults)), methods=["GET"]))
    routes += openai_api.routes(ctx, ctx.config.checkpoint)  # the OpenAI-compatible /v1 API
    # Anything else the SDK may call: say which call is not served, rather than a bare 404.
    routes.append(Route("/api/v1/{call:path}", not_served(ctx), methods=["GET", "POST", "PUT", "PATCH", "DELETE"]))
    return Starlette(routes=routes, middleware=[Middleware(ApiKeyCheck, keys=ctx.config.api_keys)])


class ApiKeyCheck:
    """With keys configured, every route (stats included) answers 401 to a missing or wrong X-API-Key."""

    def __init__(self, app, keys: list[str]) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.keys and not key_is_valid(_presented_key(Headers(scope=scope)), self.keys):
            response = _error(401, "missing or wrong API key: send one of the server's keys as X-API-Key")
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


def _presented_key(headers: Headers) -> str | None:
    """Tinker's SDK sends X-API-Key; OpenAI clients send ``Authorization: Bearer KEY``."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or (bearer[7:].strip() if bearer.lower().startswith("bearer ") else None)


def not_served(ctx: Context):
    async def route(request: Request) -> Response:
        # A numbered training call the server does not implement still uses up its seq_id.
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        if isinstance(body, dict):
            training.skip_numbered(ctx, body)
        # 404, not 501: the SDK retries every 5xx for five minutes before it gives up.
        call = f"{request.method} /api/v1/{request.path_params['call']}"
        return _error(404, f"tinkerx serve does not implement {call}; see docs/sdk-compatibility.md for what is served")

    return route


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
    session_id = body.get("session_id")
    status = ctx.registry.sessions.get(session_id) if isinstance(session_id, str) else None
    if status is None:
        raise KeyError(f"unknown session {session_id!r}")
    if status == "finished":  # 410 tells the SDK to stop its heartbeat loop
        return JSONResponse({"detail": "session finished"}, 410)
    ctx.registry.touch(session_id)
    return {"type": "session_heartbeat"}


async def _telemetry(ctx: Context, body: dict) -> dict:
    return {"status": "accepted"}


async def _finish_session(ctx: Context, body: dict) -> None:
    if body["session_id"] in ctx.registry.sessions:
        ctx.end_session(body["session_id"], "the client finished its session")
    return None


async def _retrieve_future(ctx: Context, body: dict) -> Any:
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not ctx.store.known(request_id):
        raise KeyError(f"unknown request_id {request_id!r}")
    result = await ctx.store.wait(request_id, ctx.config.poll_hold_s)
    if result is None:
        return {"type": "try_again", "request_id": request_id, "queue_state": "active"}
    if result.error is not None:
        return {"error": result.error, "category": result.category}
    if result.proto is not None:
        return Response(result.proto, media_type=codec.PROTO_CONTENT_TYPE)
    return result.json


def _stats(faults: FaultInjector):
    # Not part of Tinker: lets tests check that no step was lost or applied twice, and how sampling batched.
    async def stats(ctx: Context, body: dict) -> dict:
        return {
            "models": ctx.registry.ops, "faults": faults.counts, "samplers": len(ctx.registry.samplers),
            "sampling": ctx.scheduler.snapshot(),
        }  # fmt: skip

    return stats


# (method, path, handler(ctx, body)): the whole HTTP surface; add a front door by adding rows.
ROUTES: list[tuple[str, str, Callable[[Context, Any], Awaitable[Any]]]] = [
    ("GET", "/api/v1/healthz", _healthz),
    ("GET", "/api/v1/get_server_capabilities", _capabilities),
    ("POST", "/api/v1/client/config", _client_config),
    ("POST", "/api/v1/client/dynamic_config", _dynamic_config),
    ("POST", "/api/v1/create_session", _create_session),
    ("POST", "/api/v1/session_heartbeat", _heartbeat),
    ("POST", "/api/v1/sessions/{session_id}/finish", _finish_session),
    ("POST", "/api/v1/telemetry", _telemetry),
    ("POST", "/api/v1/create_model", training.create_model),
    ("POST", "/api/v1/get_info", training.get_info),
    ("POST", "/api/v1/forward_backward", training.forward_backward),
    ("POST", "/api/v1/forward", training.forward_backward),
    ("POST", "/api/v1/optim_step", training.optim_step),
    ("POST", "/api/v1/save_weights", training.save_weights),
    ("POST", "/api/v1/save_weights_for_sampler", training.save_weights_for_sampler),
    ("POST", "/api/v1/load_weights", training.load_weights),
    ("POST", "/api/v1/create_sampling_session", sampling.create_sampling_session),
    ("GET", "/api/v1/samplers/{sampler_id:path}", sampling.get_sampler),
    ("POST", "/api/v1/asample", sampling.asample),
    ("POST", "/api/v1/retrieve_future", _retrieve_future),
    ("GET", "/api/v1/training_runs", rest.list_training_runs),
    ("GET", "/api/v1/training_runs/{training_run_id}", rest.get_training_run),
    ("GET", "/api/v1/training_runs/{training_run_id}/checkpoints", rest.list_checkpoints),
    ("DELETE", "/api/v1/training_runs/{training_run_id}/checkpoints/{checkpoint_id:path}", rest.delete_checkpoint),
    ("GET", "/api/v1/checkpoints", rest.list_user_checkpoints),
    ("POST", "/api/v1/weights_info", rest.weights_info),
    ("GET", "/api/v1/sessions", rest.list_sessions),
    ("GET", "/api/v1/sessions/{session_id}", rest.get_session),
]

"""The SDK's management calls (``RestClient``): training runs, checkpoints, sessions, weights info.

A training run is a model this server created (``{session}:train:{n}``); its checkpoints are the
ones in the server's ``tinker://`` index, so runs from before a restart are listed by their
checkpoints. GET handlers receive path and query parameters as their body.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from tinker import types

from tinkerx.serve.context import Context


def _when(timestamp: float | None) -> str:
    return dt.datetime.fromtimestamp(timestamp or 0.0, dt.timezone.utc).isoformat()


def _run_of(path: str) -> str:
    return types.ParsedCheckpointTinkerPath.from_tinker_path(path).training_run_id


def _checkpoint(path: str, entry: dict[str, Any]) -> dict[str, Any]:
    parsed = types.ParsedCheckpointTinkerPath.from_tinker_path(path)
    local = Path(entry["local_path"])
    size = sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) if local.is_dir() else None
    return {
        "checkpoint_id": parsed.checkpoint_id, "checkpoint_type": parsed.checkpoint_type,
        "time": _when(entry.get("time")), "tinker_path": path, "size_bytes": size,
    }  # fmt: skip


def _checkpoints_of(ctx: Context, run_id: str | None) -> list[dict[str, Any]]:
    return [_checkpoint(p, e) for p, e in ctx.registry.checkpoints.items() if run_id is None or _run_of(p) == run_id]


def _page(items: list[Any], body: dict) -> tuple[list[Any], dict[str, int]]:
    offset, limit = int(body.get("offset", 0)), int(body.get("limit", 20))
    if offset < 0 or limit < 0:
        raise ValueError(f"offset={offset} and limit={limit} must be >= 0")
    return items[offset : offset + limit], {"offset": offset, "limit": limit, "total_count": len(items)}


def _run_ids(ctx: Context) -> list[str]:
    return sorted(set(ctx.registry.models) | {_run_of(p) for p in ctx.registry.checkpoints})


def _training_run(ctx: Context, run_id: str) -> dict[str, Any]:
    checkpoints = _checkpoints_of(ctx, run_id)
    model = ctx.registry.models.get(run_id)
    if model is None and not checkpoints:
        raise KeyError(f"unknown training run {run_id!r}")
    entry = next((e for p, e in ctx.registry.checkpoints.items() if _run_of(p) == run_id), {})
    rank = model.rank if model is not None else entry.get("rank")
    latest = {kind: max((c for c in checkpoints if c["checkpoint_type"] == kind), key=lambda c: c["time"], default=None) for kind in ("training", "sampler")}
    return {
        "training_run_id": run_id, "base_model": model.base_model if model is not None else entry.get("base_model", ctx.base_model),
        "model_owner": "local", "is_lora": bool(rank), "lora_rank": rank or None,
        "last_request_time": _when(entry.get("time")),
        "last_checkpoint": latest["training"], "last_sampler_checkpoint": latest["sampler"],
    }  # fmt: skip


async def list_training_runs(ctx: Context, body: dict) -> dict:
    ids, cursor = _page(_run_ids(ctx), body)
    return {"training_runs": [_training_run(ctx, i) for i in ids], "cursor": cursor}


async def get_training_run(ctx: Context, body: dict) -> dict:
    return _training_run(ctx, body["training_run_id"])


async def list_checkpoints(ctx: Context, body: dict) -> dict:
    run_id = body["training_run_id"]
    _training_run(ctx, run_id)  # a 404 for an unknown run, not an empty list
    return {"checkpoints": _checkpoints_of(ctx, run_id), "cursor": None}


async def list_user_checkpoints(ctx: Context, body: dict) -> dict:
    checkpoints, cursor = _page(_checkpoints_of(ctx, None), body)
    return {"checkpoints": checkpoints, "cursor": cursor}


async def delete_checkpoint(ctx: Context, body: dict) -> None:
    ctx.registry.delete_checkpoint(f"tinker://{body['training_run_id']}/{body['checkpoint_id']}")
    return None


async def weights_info(ctx: Context, body: dict) -> dict:
    entry = ctx.registry.checkpoint(body["tinker_path"])
    rank = entry.get("rank")
    return {"base_model": entry["base_model"], "is_lora": bool(rank), "lora_rank": rank or None}


async def list_sessions(ctx: Context, body: dict) -> dict:
    sessions, _ = _page(sorted(ctx.registry.sessions, key=lambda s: ctx.registry.created.get(s, 0.0), reverse=True), body)
    return {"sessions": sessions}


async def get_session(ctx: Context, body: dict) -> dict:
    session_id = body["session_id"]
    if session_id not in ctx.registry.sessions:
        raise KeyError(f"unknown session {session_id!r}")
    prefix = f"{session_id}:"
    runs = sorted({r for r in _run_ids(ctx) if r.startswith(prefix)})
    return {"training_run_ids": runs, "sampler_ids": sorted(s for s in ctx.registry.samplers if s.startswith(prefix))}

"""What the server accepts: each check raises ``ValueError`` (a one-line 400) naming the bad value
and what is valid, before any work is queued."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tinker import types

from tinkerx.serve.context import ServerConfig


@dataclass(frozen=True)
class ModelShape:
    vocab_size: int | None
    context_length: int | None


def shape_of(client: Any) -> ModelShape:
    """The vocabulary and context of a backend client's model (None where the backend hides them)."""
    config = getattr(getattr(getattr(client, "engine", None), "model", None), "config", None)
    return ModelShape(getattr(config, "vocab_size", None), getattr(config, "max_position_embeddings", None))


def check_tokens(tokens: list[int], shape: ModelShape, what: str) -> None:
    if not tokens:
        raise ValueError(f"{what} is empty: give at least one token")
    low, high = min(tokens), max(tokens)
    if low < 0 or (shape.vocab_size is not None and high >= shape.vocab_size):
        bad = low if low < 0 else high
        raise ValueError(f"{what} has token id {bad}, outside the model's vocabulary [0, {shape.vocab_size})")


def check_sample(req: types.SampleRequest, tokens: list[int], config: ServerConfig, shape: ModelShape) -> None:
    params = req.sampling_params
    if not 1 <= req.num_samples <= config.max_num_samples:
        raise ValueError(f"num_samples={req.num_samples} is out of range: 1..{config.max_num_samples} (server.max_num_samples)")
    if params.max_tokens is None or not 1 <= params.max_tokens <= config.max_tokens:
        raise ValueError(f"max_tokens={params.max_tokens} is out of range: 1..{config.max_tokens} (server.max_tokens)")
    if not (math.isfinite(params.temperature) and params.temperature >= 0):
        raise ValueError(f"temperature={params.temperature} is invalid: use a finite value >= 0 (0 is greedy)")
    if not (math.isfinite(params.top_p) and 0 < params.top_p <= 1):
        raise ValueError(f"top_p={params.top_p} is invalid: use 0 < top_p <= 1")
    if params.top_k is not None and params.top_k < 1 and params.top_k != -1:
        raise ValueError(f"top_k={params.top_k} is invalid: use -1 (off) or >= 1")
    check_tokens(tokens, shape, "the prompt")
    if len(tokens) > config.max_prompt_tokens:
        raise ValueError(f"the prompt has {len(tokens)} tokens; this server's limit is {config.max_prompt_tokens} (server.max_prompt_tokens)")
    if shape.context_length is not None and len(tokens) + params.max_tokens > shape.context_length:
        raise ValueError(
            f"prompt ({len(tokens)} tokens) + max_tokens ({params.max_tokens}) exceeds the model's context "
            f"of {shape.context_length} tokens"
        )


def check_adam(params: types.AdamParams) -> None:
    for name in ("learning_rate", "beta1", "beta2", "eps", "weight_decay", "grad_clip_norm"):
        value = getattr(params, name)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"Adam {name}={value} is invalid: use a finite value >= 0")
    if not (params.beta1 < 1 and params.beta2 < 1):
        raise ValueError(f"Adam betas ({params.beta1}, {params.beta2}) must be < 1")


def check_lora(lora: types.LoraConfig) -> None:
    if lora.rank < 0:
        raise ValueError(f"LoRA rank={lora.rank} is invalid: use 0 (full model) or a positive rank")


def check_data(data: list[Any], shape: ModelShape) -> None:
    if not data:
        raise ValueError("forward_backward got no data: give at least one Datum")
    for i, datum in enumerate(data):
        tokens = datum.model_input.to_ints()
        check_tokens(tokens, shape, f"datum {i}'s model_input")
        if shape.context_length is not None and len(tokens) > shape.context_length:
            raise ValueError(f"datum {i}'s model_input has {len(tokens)} tokens, longer than the model's context of "
                             f"{shape.context_length} tokens: cut or drop it before sending")

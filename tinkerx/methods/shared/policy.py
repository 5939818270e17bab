"""The trained policy's clients, its evaluation and its checkpoints: what every method does the same way.

Sampling clients are futures. The tinker SDK's ``save_weights_and_get_sampling_client()`` and
``create_sampling_client()`` return a future of the ``SamplingClient`` (using the future as the
client is deprecated there, with a FutureWarning on every call); the local backend's sampling client
is its own future (``.result()`` returns it). So a sampling client is resolved with ``.result()``,
here and nowhere else, the same way on every backend.
"""

from __future__ import annotations

from typing import Any

from tinkerx.errors import ConfigError
from tinkerx.pipeline import Pipeline
from tinkerx.runs.checkpoints import checkpoint_base_model, load_weights


def resolved(client: Any) -> Any:
    """A sampling client from what a service handed out: its future resolved.

    An HTTP endpoint (``backend=openai``) is the one backend that hands out the client itself, with
    no future around it: there is nothing to resolve.
    """
    result = getattr(client, "result", None)
    return result() if callable(result) else client


def open_policy(p: Pipeline, init_from: str | None = None, key: str = "method.init_from", seed: int | None = None) -> Any:
    """The policy's training client for a fresh run: a new LoRA on the base model, or ``init_from``'s weights.

    ``init_from`` loads weights only: a warm start is a fresh optimizer on top of e.g. an SFT run.
    ``seed`` picks the LoRA initialisation (default: the run's seed).
    """
    if init_from:
        return load_weights(p.service, init_from, key)
    return p.service.create_lora_training_client(p.base_model, rank=p.lora_rank, seed=p.seed if seed is None else seed).result()


def check_warm_start(p: Pipeline, init_from: str | None) -> None:
    """Refuses a warm start (``method.init_from``) trained from another base model than the run's."""
    trained_from = checkpoint_base_model(init_from) if init_from else None
    if trained_from and trained_from != p.base_model:
        raise ConfigError(f"method.init_from was trained from {trained_from}, but model is {p.base_model}; choose the matching model=")


def resume_policy(p: Pipeline, path: str) -> Any:
    """The policy's training client continued from a resume point's checkpoint: weights and optimizer."""
    return p.service.create_training_client_from_state_with_optimizer(path).result()


def policy_sampler(training_client: Any) -> Any:
    """A sampling client of the training client's current weights."""
    return training_client.save_weights_and_get_sampling_client().result()


def base_sampler(p: Pipeline, base_model: str | None = None) -> Any:
    """A sampling client of a base model's frozen weights (default: the run's)."""
    return resolved(p.service.create_sampling_client(base_model=base_model or p.base_model))


def evaluate_sampler(p: Pipeline, sampler: Any, name: str) -> dict[str, Any]:
    """The run's held-out evaluation of ``sampler``: records to ``eval/<name>.jsonl``, metrics returned."""
    result = p.evaluator(sampler)
    p.recorder.write_jsonl(f"eval/{name}.jsonl", result.records)
    return result.metrics


def save_policy(training_client: Any, name: str) -> str:
    """Saves the full state (weights and optimizer) under ``name``; its path."""
    return training_client.save_state(name).result().path


def load_policy(training_client: Any, path: str, with_optimizer: bool = False) -> None:
    """Loads a saved state into the training client: weights, and the optimizer when asked."""
    load = training_client.load_state_with_optimizer if with_optimizer else training_client.load_state
    load(path).result()


class OnePolicy:
    """The policy-facing part of the ``Method`` protocol, for a method that trains one policy.

    The method sets ``self.p`` (its pipeline) and ``self.client`` (the policy's training client) in
    ``setup``; one that checkpoints on its own (GRPO's best-so-far) overrides ``saved_checkpoints``.
    """

    p: Pipeline
    client: Any

    def sampling_client(self) -> Any:
        return policy_sampler(self.client)

    def evaluate(self, name: str) -> dict[str, Any]:
        return evaluate_sampler(self.p, self.sampling_client(), name)

    def save(self, name: str) -> dict[str, str]:
        return {"policy": save_policy(self.client, name)}

    def load(self, path: str, with_optimizer: bool = False) -> None:
        load_policy(self.client, path, with_optimizer)

    def saved_checkpoints(self) -> list[dict[str, Any]]:
        return []

"""A tiny-model checkpoint a few optimizer steps from the base model, for tests that load one."""

from __future__ import annotations

from pathlib import Path


def tiny_checkpoint(folder: Path, prompt_T: list[int], answer_T: list[int], steps: int = 3, lr: float = 3e-2) -> str:
    """Trains the tiny model ``steps`` times on one datum (``answer_T`` after ``prompt_T``) and returns
    the saved checkpoint's path: weights that differ from the base model's."""
    from tinker import types

    from tinkerx.backends.local import LocalBackend
    from tinkerx.chat import supervised_datum
    from tinkerx.models.tiny import TinyModel

    backend = LocalBackend(device="cpu")
    service = backend.open([TinyModel()], folder, seed=0)
    client = service.create_lora_training_client("tinkerx/tiny", rank=0, seed=0).result()
    datum = supervised_datum(prompt_T, answer_T)
    for _ in range(steps):
        client.forward_backward([datum], "cross_entropy").result()
        client.optim_step(types.AdamParams(learning_rate=lr)).result()
    path = client.save_state("final").result().path
    backend.close()
    return path

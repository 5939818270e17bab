"""The one thing a backend needs from a model: a tokenizer and weights on a device.

Loaders are small serialisable objects built from ``conf/model/*.yaml``; they import torch and
transformers only when asked to load, so composing configs and starting the CLI stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    import transformers


@runtime_checkable
class ModelLoader(Protocol):
    """Builds a tokenizer and a plain, trainable causal LM (peft and ``save_pretrained`` work on it)."""

    base_model: str  # the name backends report and Tinker knows it by, e.g. "tinkerx/tiny"

    def load_tokenizer(self) -> "transformers.PreTrainedTokenizerBase": ...

    def load_model(self, device: "torch.device", dtype: "torch.dtype") -> "transformers.PreTrainedModel": ...

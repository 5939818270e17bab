"""Any causal LM on the Hugging Face hub (or in a local folder), loaded with the Auto classes.

Hub failures surface as one-line ``UserError``s: an unreachable hub, a gated repo or a wrong name are
the user's to fix and should not print a transformers traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tinkerx.errors import UserError

if TYPE_CHECKING:
    import torch
    import transformers


@dataclass
class HubModel:
    """``from_pretrained`` of a hub name or local folder; see ``conf/model/qwen3-8b.yaml`` and friends."""

    base_model: str
    revision: str | None = None
    trust_remote_code: bool = False

    def source(self) -> str:
        """A local folder when ``base_model`` names one, else the hub name unchanged."""
        local = Path(self.base_model).expanduser()
        if local.is_dir():
            return str(local)
        if self.base_model.startswith(("/", ".", "~")):
            raise UserError(f"model folder {self.base_model} does not exist")
        return self.base_model

    def load_tokenizer(self) -> "transformers.PreTrainedTokenizerBase":
        from transformers import AutoTokenizer

        return self._load(AutoTokenizer.from_pretrained)

    def load_model(self, device: "torch.device", dtype: "torch.dtype") -> "transformers.PreTrainedModel":
        from transformers import AutoModelForCausalLM

        # Accelerators load straight onto the device so an 8B model never sits whole in host RAM.
        placement = {} if device.type == "cpu" else {"device_map": device}
        return self._load(AutoModelForCausalLM.from_pretrained, dtype=dtype, **placement).to(device)

    def _load(self, from_pretrained: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return from_pretrained(
                self.source(), revision=self.revision, trust_remote_code=self.trust_remote_code, **kwargs
            )
        except OSError as exc:
            raise self._explain(exc) from exc

    def _explain(self, exc: OSError) -> Exception:
        """Turn a hub failure into a one-line UserError; anything unrecognised is returned unchanged."""
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        chain = _chain(exc)
        name = self.base_model + (f"@{self.revision}" if self.revision else "")
        if any(isinstance(e, GatedRepoError) for e in chain):  # before RepositoryNotFound: a subclass
            return UserError(
                f"{name} is gated on the Hugging Face hub: accept its licence on the model page, "
                "then log in (hf auth login, or set HF_TOKEN)"
            )
        if any(isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError)) for e in chain):
            return UserError(f"{name} was not found on the Hugging Face hub (check the name and revision)")
        unreachable = (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError)
        if any(isinstance(e, unreachable) for e in chain) or "couldn't connect" in str(exc):
            return UserError(
                f"could not load {name}: the Hugging Face hub could not be reached and the model is not "
                "in the local cache; download it where the hub is reachable and set HF_HUB_OFFLINE=1, "
                "or set model.base_model to a local folder"
            )
        return exc


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it was raised from or during."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen

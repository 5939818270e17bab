"""A tinkerx checkpoint as one plain transformers model: base weights, the checkpoint's tensors
loaded over them, LoRA merged in. The model config that built the base comes from ``conf/model/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinkerx.errors import UserError
from tinkerx.paths import CONFIG_DIR

CONF_MODELS = CONFIG_DIR / "model"


def checkpoint_meta(path: str) -> dict[str, Any]:
    from tinkerx.runs.checkpoints import resolve_checkpoint

    if "://" in path:
        raise UserError(f"{path}: export reads a local checkpoint folder; download it first (a tinkerx.serve checkpoint's folder is in its state dir's checkpoints.json)")
    folder = Path(resolve_checkpoint(path, "CHECKPOINT"))
    meta = folder / "meta.json"
    if not meta.is_file():
        raise UserError(f"{folder} is not a tinkerx checkpoint (no meta.json)")
    return {"path": str(folder), **json.loads(meta.read_text())}


def model_loader(base_model: str, model: str | None = None) -> Any:
    """The loader of ``conf/model/<model>.yaml``, or of the one whose ``base_model`` matches."""
    from omegaconf import OmegaConf

    from tinkerx.build import instantiate

    options = {p.stem: p for p in sorted(CONF_MODELS.glob("*.yaml"))}
    if model is not None:
        if model not in options:
            raise UserError(f"--model {model}: no conf/model/{model}.yaml; choose one of {', '.join(options)}")
        chosen = OmegaConf.load(options[model])
    else:
        matches = [OmegaConf.load(p) for p in options.values() if OmegaConf.load(p).get("base_model") == base_model]
        if not matches:
            raise UserError(f"no conf/model/*.yaml has base_model {base_model!r}; name one with --model ({', '.join(options)})")
        chosen = matches[0]
    return instantiate(chosen.loader, "model.loader")


def merged_model(meta: dict[str, Any], loader: Any) -> tuple[Any, Any]:
    """(plain model with the checkpoint's weights and LoRA merged, tokenizer), on the CPU in fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    from tinkerx.backends.local.engine import ModelEngine

    engine = ModelEngine(loader, device=torch.device("cpu"), dtype=torch.float32, rank=int(meta["rank"]), seed=0, trainable=True)
    engine.load(Path(meta["path"]), with_optimizer=False)
    model = engine.model.merge_and_unload() if int(meta["rank"]) > 0 else engine.model
    # Rebuilt from its config: a model read from GGUF keeps a quantization_config that save_pretrained rejects.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain.eval(), engine.tokenizer

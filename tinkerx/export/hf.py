"""``--format hf``: a standard Hugging Face folder that transformers and vLLM load as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_hf(model: Any, tokenizer: Any, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)  # with its chat template, so servers render prompts as tinkerx did
    return out

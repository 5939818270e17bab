"""Make the SDK's ``get_tokenizer()`` find the served model's tokenizer with no download.

The SDK calls ``AutoTokenizer.from_pretrained(<base model name>)``: a hub id, looked up in the
Hugging Face cache. So the server writes its model's tokenizer into that cache (this machine's
``HF_HUB_CACHE``) under the model's name, as if it had been downloaded, at a revision of its own.
Clients on the same machine with ``HF_HUB_OFFLINE=1`` load it at once; without it, transformers
first tries the hub. A cache entry that already exists (a real hub model) is left alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REVISION = "tinkerx-local"


def register_tokenizer(base_model: str, tokenizer: Any) -> Path | None:
    """The snapshot folder now holding ``tokenizer`` for ``base_model``, or None if the cache had one."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"models--{base_model.replace('/', '--')}"
    ref = repo / "refs" / "main"
    if ref.exists() and ref.read_text().strip() != REVISION:
        return None
    snapshot = repo / "snapshots" / REVISION
    tokenizer.save_pretrained(snapshot)
    # AutoTokenizer reads config.json first; naming the tokenizer class there is all it needs.
    (snapshot / "config.json").write_text(json.dumps({"tokenizer_class": type(tokenizer).__name__}))
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(REVISION)
    return snapshot

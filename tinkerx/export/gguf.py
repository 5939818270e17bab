"""``--format gguf``: one fp32 GGUF file for llama.cpp, ollama and transformers' ``gguf_file=``.

Written with the ``gguf`` package's writer and tensor-name tables (``pip install gguf``; the
``smollm2`` extra has it). The architectures below are the ones whose metadata and tensor layout
are written here; any other is refused before the weights are merged. Llama's query and key
projections are stored in llama.cpp's rotary layout (the permutation its own converter applies).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinkerx.errors import UserError

# transformers model_type -> (gguf architecture, tokenizer pre-split name llama.cpp knows, permute q/k)
SUPPORTED = {"llama": ("LLAMA", "smollm", True), "qwen2": ("QWEN2", "qwen2", False)}


def check_supported(loader: Any) -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise UserError("--format gguf needs the gguf package: pip install gguf")
    model_type = _model_type(loader)
    if model_type not in SUPPORTED:
        raise UserError(f"--format gguf: architecture {model_type!r} is not supported (supported: {', '.join(SUPPORTED)}); use --format hf")


def _model_type(loader: Any) -> str:
    config = loader.config() if callable(getattr(loader, "config", None)) else None
    if config is None:
        cached = getattr(loader, "_ensure_cache", lambda: None)()
        if cached is not None:
            config = json.loads((Path(cached) / "config.json").read_text())
            return config.get("model_type", "?")
        return "?"
    return config.model_type


def _permute(w: Any, n_head: int) -> Any:
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model: Any, tokenizer: Any, out: Path) -> Path:
    import gguf
    import numpy as np

    config = model.config
    arch_name, pre, permute = SUPPORTED[config.model_type]
    arch = getattr(gguf.MODEL_ARCH, arch_name)
    out = out if out.suffix == ".gguf" else out / "model.gguf"
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    n_kv = config.num_key_value_heads or config.num_attention_heads
    writer.add_name(str(config._name_or_path or config.model_type))
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(n_kv)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)))
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(writer, tokenizer, config.vocab_size, pre)

    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    if "lm_head.weight" not in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    for hf_name, data in state.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UserError(f"--format gguf: no GGUF name for tensor {hf_name}")
        if permute and hf_name.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads)
        elif permute and hf_name.endswith("k_proj.weight"):
            data = _permute(data, n_kv)
        writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _add_tokenizer(writer: Any, tokenizer: Any, vocab_size: int, pre: str) -> None:
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE":
        raise UserError(f"--format gguf: only byte-level BPE tokenizers are written, this one is {spec['model']['type']}")
    vocab = {**spec["model"]["vocab"], **{t["content"]: t["id"] for t in spec.get("added_tokens", [])}}
    special = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
    by_id = {i: tok for tok, i in vocab.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
        else:  # the embedding has more rows than the tokenizer has tokens
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores([0.0] * len(tokens))  # readers that derive merges from scores need them
    writer.add_token_merges(merges)  # llama.cpp requires the key, even empty (the tiny model has no merges)
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id), (writer.add_eos_token_id, tokenizer.eos_token_id), (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(token_id)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)

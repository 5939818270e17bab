"""A ~1.1M-parameter chat model made from scratch, so everything runs without the hub.

The tokenizer is byte-level with no merges: any UTF-8 text round-trips exactly and the vocabulary is
tiny (256 bytes + 4 specials), which keeps the embedding from dominating the parameter count.
Token id ``b`` is byte ``b``, so token ids are readable when debugging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch
    import transformers

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>")

# ChatML, the format Qwen and SmolLM2 use, so prompts look the same on tiny and real models.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map, the alphabet the ByteLevel pre-tokenizer emits."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def build_tokenizer(max_length: int = 512) -> "transformers.PreTrainedTokenizerFast":
    """Byte-level BPE with no merges, wrapped as a transformers fast tokenizer with ChatML."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: b for b, ch in _bytes_to_unicode().items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    # No regex split and no prefix space: with no merges, splitting buys nothing and a prefix space
    # would break exact round trips.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",  # generation stops at the end of the assistant turn
        pad_token="<|pad|>",
        chat_template=CHATML_TEMPLATE,
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,  # cleanup rewrites " ." etc. and breaks round trips
    )


@dataclass
class TinyModel:
    """Qwen2- or Llama-shaped model with deterministic random weights; see ``conf/model/tiny.yaml``."""

    base_model: str = "tinkerx/tiny"
    architecture: Literal["qwen2", "llama"] = "qwen2"
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    seed: int = 0

    def load_tokenizer(self) -> "transformers.PreTrainedTokenizerFast":
        return build_tokenizer(self.max_position_embeddings)

    def config(self) -> "transformers.PretrainedConfig":
        from transformers import LlamaConfig, Qwen2Config

        classes = {"qwen2": Qwen2Config, "llama": LlamaConfig}
        if self.architecture not in classes:
            from tinkerx.errors import ConfigError

            raise ConfigError(f"model.loader.architecture={self.architecture!r}; valid: qwen2, llama")
        tok = self.load_tokenizer()
        ids = {"eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
               "bos_token_id": tok.convert_tokens_to_ids("<|endoftext|>")}
        return classes[self.architecture](
            vocab_size=len(tok),
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
            tie_word_embeddings=True,  # at this size an untied head would be a third of the model
            **ids,
        )

    def load_model(self, device: "torch.device", dtype: "torch.dtype") -> "transformers.PreTrainedModel":
        import torch
        from transformers import AutoModelForCausalLM

        config = self.config()
        # Initialise on CPU in fp32 under a private RNG: the same seed gives bitwise-identical
        # weights whatever the caller's RNG state, device or dtype.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
            setattr(model.generation_config, key, getattr(config, key))
        return model.to(device=device, dtype=dtype)

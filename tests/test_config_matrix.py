"""Defaults compose from what they describe: every model x data set x method, composed (nothing loaded).

The learning rate comes from the model (``lr``; ``rl_lr`` for GRPO), the generation budget from the
data set, and an experiment's values reach a run only when it names the experiment.
"""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from tests.helpers.paths import CONF_DIR
from tinkerx.paths import EXPERIMENT_DIR

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
# Preference pairs feed DPO only: there is no ground truth for sft / grpo / eval / debate to use.
DATASETS = sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml") if p.stem != "preference_jsonl")
MULTIPLE_CHOICE = {"mmlu_stem", "mcq_jsonl", "gpqa_diamond"}  # what debate argues over
METHODS = ("sft", "grpo", "eval", "debate")

# The least a full answer needs, per data set: a worked solution (GSM8K), a competition solution
# (MATH), reasoning before a letter (multiple choice); arithmetic needs a number and little else.
MIN_BUDGET = {"gsm8k": 512, "math": 1024, "mmlu_stem": 512, "mcq_jsonl": 512, "gpqa_diamond": 1024, "jsonl": 256, "arithmetic": 8,
              "mbpp": 256, "humaneval": 256, "py_functions": 27,  # code: a function (in a fenced block)
              "chat": 256}  # a sampled reply to a held-out conversation
MAX_BUDGET = {"arithmetic": 32}

# Values from conf/config.yaml that only an experiment (conf/experiment/) changes.
PLAIN = {"optim.schedule": "constant", "optim.warmup_steps": 0, "training.batch_size": 32, "training.max_steps": 100}


BACKENDS = sorted(p.stem for p in (CONF_DIR / "backend").glob("*.yaml"))


def combinations():
    for method in METHODS:
        for model in MODELS:
            for dataset in DATASETS:
                if method != "debate" or dataset in MULTIPLE_CHOICE:
                    yield method, model, dataset


def _value(cfg, key):
    return OmegaConf.select(cfg, key)


def test_every_combination_composes_model_and_data_set_defaults(compose_config):
    checked = 0
    for i, (method, model, dataset) in enumerate(combinations()):
        # Backends write only their own node: taking turns covers each with every method and model.
        backend = BACKENDS[i % len(BACKENDS)]
        where = f"method={method} model={model} dataset={dataset} backend={backend}"
        cfg = compose_config([f"method={method}", f"model={model}", f"dataset={dataset}", f"backend={backend}"])
        assert cfg.method._target_.startswith("tinkerx.methods.") and cfg.backend._target_, where
        m, budget = cfg.model, cfg.dataset.max_tokens

        # Budget: the data set's, fitting a full answer, and inside the model's context.
        assert budget >= MIN_BUDGET[dataset] and budget <= MAX_BUDGET.get(dataset, budget), where
        assert cfg.sampling.max_tokens == budget, where
        assert cfg.evaluator is None or cfg.evaluator.max_tokens == budget, where
        if m.lora_rank > 0:  # a real model: room for the prompt beside the answer
            assert budget + 1024 <= m.context_length, where

        # Learning rate: the model's, in its sane range; GRPO at the model's RL rate.
        assert isinstance(m.lora_rank, int) and m.lora_rank >= 0, where
        assert isinstance(m.renderer, str) and m.renderer, where
        if m.lora_rank > 0:
            assert 1e-5 <= m.rl_lr <= m.lr <= 1e-3, where
        else:  # full fine-tuning of the tiny model from scratch
            assert m.rl_lr < m.lr <= 1e-2, where
        assert cfg.optim.lr == (m.rl_lr if method == "grpo" else m.lr), where
        # No experiment applies itself, the demo's included: run length and schedule stay conf/config.yaml's.
        for key, plain in PLAIN.items():
            assert _value(cfg, key) == plain, (where, key)
        checked += 1
    assert checked == len(MODELS) * len(DATASETS) * 3 + len(MODELS) * len(MULTIPLE_CHOICE)


@pytest.mark.parametrize("overrides, lr, max_tokens", [
    (["method=grpo", "dataset=gsm8k", "model=qwen3-8b", "backend=tinker"], (1e-5, 1e-4), 1024),
    (["model=llama-3.1-8b-instruct", "dataset=math"], (1e-4, 5e-4), 2048),
    (["method=grpo", "dataset=math", "model=qwen3-4b-instruct"], (1e-5, 1e-4), 2048),
])
def test_real_runs_get_lora_learning_rates_and_full_budgets(compose_config, overrides, lr, max_tokens):
    cfg = compose_config(overrides)
    assert lr[0] <= cfg.optim.lr <= lr[1]
    assert cfg.sampling.max_tokens == cfg.evaluator.max_tokens == max_tokens
    assert cfg.model.lora_rank == 32
    assert cfg.training.max_steps == PLAIN["training.max_steps"] and cfg.optim.schedule == "constant"


def test_explicit_overrides_win(compose_config):
    cfg = compose_config(["method=grpo", "dataset=gsm8k", "model=qwen3-8b", "optim.lr=1e-5", "sampling.max_tokens=300"])
    assert cfg.optim.lr == 1e-5 and cfg.sampling.max_tokens == 300 and cfg.evaluator.max_tokens == 300
    # Over an experiment's values as well.
    cfg = compose_config(["experiment=sft_tiny_arithmetic", "optim.lr=1e-3", "training.max_steps=5", "sampling.max_tokens=4", "evaluator.max_tokens=6"])
    assert cfg.optim.lr == 1e-3 and cfg.training.max_steps == 5 and cfg.sampling.max_tokens == 4 and cfg.evaluator.max_tokens == 6
    cfg = compose_config(["model=qwen3-8b", "model.lr=1e-4", "dataset=gsm8k", "dataset.max_tokens=700"])
    assert cfg.optim.lr == 1e-4 and cfg.sampling.max_tokens == 700


def test_bare_default_is_sft_of_the_tiny_model_on_plain_defaults(compose_config):
    cfg = compose_config([])
    assert (cfg.method._target_, cfg.model.base_model, cfg.dataset._target_) == (
        "tinkerx.methods.sft.SFT", "tinkerx/tiny", "tinkerx.data.arithmetic.Arithmetic")
    assert {k: _value(cfg, k) for k in PLAIN} == PLAIN
    assert (cfg.optim.lr, cfg.sampling.max_tokens) == (cfg.model.lr, cfg.dataset.max_tokens)


def test_the_offline_demo_is_an_experiment_you_name(compose_config):
    # The values the demo's 98.5-100% held-out accuracy was measured with (README, Quick start).
    cfg = compose_config(["experiment=sft_tiny_arithmetic"])
    assert (cfg.method._target_, cfg.model.base_model, cfg.dataset._target_) == (
        "tinkerx.methods.sft.SFT", "tinkerx/tiny", "tinkerx.data.arithmetic.Arithmetic")
    assert (cfg.optim.lr, cfg.optim.schedule, cfg.optim.warmup_steps) == (2e-3, "cosine", 20)
    assert (cfg.training.batch_size, cfg.training.max_steps, cfg.sampling.max_tokens) == (64, 1000, 8)


# What each experiment was tuned with; they keep it whatever the defaults around them do.
EXPERIMENTS = {
    "sft_tiny_arithmetic": {"optim.lr": 2e-3, "optim.schedule": "cosine", "optim.warmup_steps": 20, "training.max_steps": 1000, "training.batch_size": 64, "sampling.max_tokens": 8},
    "sft_tiny_arithmetic_mixed_ops": {"optim.lr": 3e-3, "optim.schedule": "cosine", "optim.warmup_steps": 20, "training.max_steps": 1200, "training.batch_size": 64, "sampling.max_tokens": 8},
    "sft_tiny_arithmetic_short": {"optim.lr": 3e-4, "optim.schedule": "cosine", "training.max_steps": 150, "sampling.max_tokens": 8, "dataset.train_carry_slips": 0.85, "method.init_from": "outputs/demo/tiny_sft_full"},
    "grpo_tiny_arithmetic": {"optim.lr": 1e-4, "optim.schedule": "constant", "training.batch_size": 32, "training.max_steps": 40, "sampling.max_tokens": 8},
    "grpo_tiny_arithmetic_from_scratch": {"optim.lr": 1e-3, "optim.schedule": "constant", "training.batch_size": 16, "training.max_steps": 50, "sampling.max_tokens": 8},
    "grpo_smollm2_arithmetic": {"optim.lr": 2e-4, "training.batch_size": 8, "training.max_steps": 40, "sampling.max_tokens": 16, "model.lora_rank": 16},
    "grpo_smollm2_arithmetic_from_sft": {"optim.lr": 2e-4, "training.batch_size": 8, "training.max_steps": 40, "sampling.max_tokens": 16, "model.lora_rank": 16,
                                         "method.init_from": "outputs/demo/smollm2_arith_sft"},
    "sft_smollm2_arithmetic_short": {"optim.lr": 5e-4, "optim.schedule": "cosine", "training.batch_size": 16, "training.max_steps": 30,
                                     "dataset.train_carry_slips": 0.85, "model.lora_rank": 16},
    "sft_smollm2_gsm8k": {"optim.lr": 2e-4, "optim.schedule": "cosine", "training.max_steps": 200, "sampling.max_tokens": 256},
    "debate_tiny_mmlu": {"optim.lr": 1e-4, "training.max_steps": 20, "sampling.max_tokens": 64, "model.base_model": "tinkerx/tiny"},
    "debate_tiny_mmlu_rl": {"method.training": "rl", "method.group_size": 4, "method.num_debates": 2, "optim.lr": 1e-4, "training.max_steps": 20, "sampling.max_tokens": 64},
    "debate_smollm2_mmlu": {"optim.lr": 1e-4, "training.max_steps": 25, "sampling.max_tokens": 64, "sampling.temperature": 0.7},
    "debate_smollm2_mmlu_dry": {"training.max_steps": 8, "sampling.max_tokens": 64, "method.dry_run": True},
    "distill_tiny_arithmetic_on_policy": {"method.mode": "on_policy", "method.group_size": 1, "optim.lr": 3e-4, "optim.schedule": "cosine", "training.batch_size": 128, "training.max_steps": 40, "sampling.max_tokens": 8},
    "distill_tiny_arithmetic_off_policy": {"method.mode": "off_policy", "optim.lr": 3e-4, "optim.schedule": "cosine", "training.max_steps": 40, "sampling.max_tokens": 8, "method.init_from": "outputs/demo/tiny_sft"},
    "grpo_tiny_arithmetic_distill_baseline": {"optim.lr": 3e-4, "optim.schedule": "cosine", "training.batch_size": 16, "training.max_steps": 40, "sampling.max_tokens": 8},
    "distill_smollm2_arithmetic": {"method.mode": "off_policy", "optim.lr": 1e-3, "optim.schedule": "cosine", "training.max_steps": 40, "model.lora_rank": 16, "components.teacher.model.base_model": "tinkerx/tiny"},
    "sft_smollm2_chat_oasst": {"optim.lr": 5e-4, "optim.schedule": "cosine", "training.batch_size": 4, "training.max_steps": 16, "dataset.max_length": 512, "sampling.max_tokens": 48},
    "dpo_smollm2_preference_oasst": {"method.beta": 0.1, "method.variant": "sigmoid", "optim.lr": 2e-4, "training.batch_size": 8, "training.max_steps": 10, "training.max_tokens_per_forward": 2048, "dataset.max_length": 512},
    "dpo_tiny_arithmetic": {"method.variant": "ipo", "method.beta": 0.1, "optim.lr": 3e-5, "training.max_steps": 30, "sampling.max_tokens": 8},
    "grpo_smollm2_mbpp": {"optim.lr": 2e-4, "training.batch_size": 4, "training.max_steps": 40, "sampling.max_tokens": 256, "model.lora_rank": 16, "method.group_size": 4},
    "sft_tiny_chat_guess_number": {"optim.lr": 3e-3, "optim.schedule": "cosine", "training.batch_size": 32, "training.max_steps": 300, "dataset.max_tokens": 3, "dataset.path": "outputs/demo/guess_number_demos.jsonl"},
    "grpo_tiny_guess_number_from_sft": {"optim.lr": 5e-4, "training.batch_size": 16, "training.max_steps": 30, "sampling.max_tokens": 3, "env.high": 15, "env.max_turns": 4, "env.format_bonus": 0.0, "env.train_size": 1000, "method.init_from": "outputs/demo/tiny_guess_sft"},
    "grpo_tiny_guess_number": {"optim.lr": 1e-3, "training.batch_size": 16, "training.max_steps": 40, "sampling.max_tokens": 2, "env.high": 9, "env.max_turns": 4, "env.format_bonus": 0.2},
    "grpo_smollm2_gsm8k_judge": {"optim.lr": 2e-4, "training.batch_size": 4, "training.max_steps": 12, "sampling.max_tokens": 96, "model.lora_rank": 16, "method.group_size": 4},
    "grpo_smollm2_guess_number": {"optim.lr": 5e-4, "training.batch_size": 8, "training.max_steps": 30, "sampling.max_tokens": 8, "env.max_turns": 4, "model.lora_rank": 16},
    "sft_tiny_py_functions": {"optim.lr": 3e-3, "optim.schedule": "cosine", "training.batch_size": 64, "training.max_steps": 1000, "dataset.prompt.template": "{spec}", "method.init_from": "outputs/demo/tiny_sft_full"},
    "sft_tiny_py_functions_slips": {"optim.lr": 3e-4, "optim.schedule": "cosine", "training.max_steps": 150, "dataset.train_sign_slips": 0.85, "method.init_from": "outputs/demo/tiny_code_sft"},
    "grpo_tiny_py_functions": {"optim.lr": 2e-4, "training.batch_size": 16, "training.max_steps": 150, "method.group_size": 8, "dataset.prompt.template": "{spec}", "method.init_from": "outputs/demo/tiny_code_slips"},
    "sft_smollm2_chat_tool_use": {"optim.lr": 5e-4, "optim.schedule": "cosine", "training.batch_size": 8, "training.max_steps": 24, "dataset.path": "outputs/demo/tool_use_demos.jsonl"},
    "grpo_smollm2_tool_use": {"optim.lr": 2e-4, "training.batch_size": 8, "training.max_steps": 10, "method.group_size": 4, "env.problems": "word", "env.max_turns": 3, "method.init_from": "outputs/demo/smollm2_tool_sft"},
    # Published Tinker runs (tinker-cookbook; tests/test_bands_published.py checks them against their sources).
    "grpo_llama-3.1-8b_gsm8k": {"optim.lr": 4e-5, "training.batch_size": 128, "training.max_steps": 59, "sampling.max_tokens": 256, "method.group_size": 16},
    "grpo_llama-3.1-8b-instruct_gsm8k": {"optim.lr": 8e-5, "training.batch_size": 32, "training.max_steps": 234, "sampling.max_tokens": 1024, "method.group_size": 64},
    "grpo_qwen3-8b_math": {"optim.lr": 2e-5, "training.batch_size": 64, "training.max_steps": 188, "sampling.max_tokens": 512, "method.group_size": 16},
    "grpo_llama-3.2-1b_arithmetic": {"optim.lr": 1e-4, "training.batch_size": 100, "training.max_steps": 100, "sampling.max_tokens": 5, "method.group_size": 4},
    "sft_llama-3.1-8b_chat_tulu3": {"optim.lr": 3e-4, "optim.schedule": "linear", "training.batch_size": 128, "training.max_steps": 781, "model.lora_rank": 64, "dataset.max_length": 16384},
}


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_experiments_keep_their_tuned_values(compose_config, experiment):
    cfg = compose_config([f"experiment={experiment}"])
    assert {k: _value(cfg, k) for k in EXPERIMENTS[experiment]} == EXPERIMENTS[experiment]


def test_every_experiment_is_pinned_here():
    assert set(EXPERIMENTS) == {p.stem for p in EXPERIMENT_DIR.glob("*.yaml")}


def test_experiments_live_in_a_real_folder_and_nothing_applies_itself():
    assert EXPERIMENT_DIR.is_dir() and not EXPERIMENT_DIR.is_symlink()
    # No defaults entry picks a file by interpolating group names (the former experiment/tuned).
    defaults = OmegaConf.load(CONF_DIR / "config.yaml").defaults
    assert not [entry for entry in defaults if "${" in str(entry)]


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_experiment_names_read_method_model_dataset(compose_config, experiment):
    choices = compose_config([f"experiment={experiment}"], return_hydra_config=True).hydra.runtime.choices
    method, model, dataset, *_variant = experiment.split("_")
    task = choices.get("env") or choices.dataset  # an environment run is named after its environment
    assert (method, choices.model.startswith(model), task.startswith(dataset)) == (choices.method, True, True), (
        f"{experiment}: method={choices.method} model={choices.model} dataset={choices.dataset}")


def test_hub_model_learning_rates_cite_the_cookbook_formula():
    for path in (CONF_DIR / "model").glob("*.yaml"):
        cfg = OmegaConf.load(path)
        if cfg.loader._target_.endswith("HubModel"):
            text = path.read_text()
            assert "hyperparam_utils.py get_lr" in text, path.name
            hidden = int(re.search(r"hidden_size (\d+)", text).group(1))
            exponent = float(re.search(r"\*\* ([\d.]+)", text).group(1))
            assert cfg.lr == pytest.approx(5e-4 * (2000 / hidden) ** exponent, rel=5e-3), path.name
            assert cfg.rl_lr == pytest.approx(cfg.lr / 10, rel=0.05), path.name


@pytest.mark.parametrize("method", ["distill", "dpo"])
def test_distill_and_dpo_take_the_models_rl_rate_and_the_data_sets_budget(compose_config, method):
    # The tiny demos' settings (lr 1e-4, 8 tokens) once sat in these methods' YAML and reached Qwen3 on GSM8K.
    cfg = compose_config([f"method={method}", "model=qwen3-8b", "dataset=gsm8k"])
    assert cfg.optim.lr == cfg.model.rl_lr and cfg.sampling.max_tokens == cfg.dataset.max_tokens == 1024

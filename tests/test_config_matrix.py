"""Defaults compose from what they describe: every model x data set x method, composed (nothing loaded).

The learning rate comes from the model (``lr``; ``rl_lr`` for GRPO), the generation budget from the
data set, and the offline demo's tuning reaches only the demo's own combination.
"""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, ROOT
from tests.test_config import composer  # noqa: F401  (the module-scoped Hydra compose fixture)

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
# Preference pairs feed DPO only: there is no ground truth for sft / grpo / eval / debate to use.
DATASETS = sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml") if p.stem != "preference_jsonl")
MULTIPLE_CHOICE = {"mmlu_stem", "mcq_jsonl", "gpqa_diamond"}  # what debate argues over
METHODS = ("sft", "grpo", "eval", "debate")

# The least a full answer needs, per data set: a worked solution (GSM8K), a competition solution
# (MATH), reasoning before a letter (multiple choice); arithmetic needs a number and little else.
MIN_BUDGET = {"gsm8k": 512, "math": 1024, "mmlu_stem": 512, "mcq_jsonl": 512, "gpqa_diamond": 1024, "jsonl": 256, "arithmetic": 8,
              "mbpp": 256, "humaneval": 256, "py_functions": 27}  # code: a function (in a fenced block)
MAX_BUDGET = {"arithmetic": 32}

# Values from conf/config.yaml that only the demo's tuning (experiments/tuned/) changes.
PLAIN = {"optim.schedule": "constant", "optim.warmup_steps": 0, "training.batch_size": 32, "training.max_steps": 100}
TUNED = {p.stem for p in (ROOT / "experiments" / "tuned").glob("*.yaml")}


BACKENDS = sorted(p.stem for p in (CONF_DIR / "backend").glob("*.yaml"))


def combinations():
    for method in METHODS:
        for model in MODELS:
            for dataset in DATASETS:
                if method != "debate" or dataset in MULTIPLE_CHOICE:
                    yield method, model, dataset


def _value(cfg, key):
    return OmegaConf.select(cfg, key)


def test_every_combination_composes_model_and_data_set_defaults(composer):
    checked = 0
    for i, (method, model, dataset) in enumerate(combinations()):
        # Backends write only their own node: taking turns covers each with every method and model.
        backend = BACKENDS[i % len(BACKENDS)]
        where = f"method={method} model={model} dataset={dataset} backend={backend}"
        cfg = composer([f"method={method}", f"model={model}", f"dataset={dataset}", f"backend={backend}"])
        assert cfg.method._target_.startswith("tinkerx.methods.") and cfg.backend._target_, where
        m, budget = cfg.model, cfg.dataset.max_tokens
        tuned = f"{method}_{model}_{dataset}"

        # Budget: the data set's, fitting a full answer, and inside the model's context.
        assert budget >= MIN_BUDGET[dataset] and budget <= MAX_BUDGET.get(dataset, budget), where
        if tuned not in TUNED:
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
        if tuned not in TUNED:
            assert cfg.optim.lr == (m.rl_lr if method == "grpo" else m.lr), where
            # Nothing from the demo leaks: run length and schedule stay conf/config.yaml's.
            for key, plain in PLAIN.items():
                assert _value(cfg, key) == plain, (where, key)
        checked += 1
    assert checked == len(MODELS) * len(DATASETS) * 3 + len(MODELS) * len(MULTIPLE_CHOICE)


@pytest.mark.parametrize("overrides, lr, max_tokens", [
    (["method=grpo", "dataset=gsm8k", "model=qwen3-8b", "backend=tinker"], (1e-5, 1e-4), 1024),
    (["model=llama-3.1-8b-instruct", "dataset=math"], (1e-4, 5e-4), 2048),
    (["method=grpo", "dataset=math", "model=qwen3-4b-instruct"], (1e-5, 1e-4), 2048),
])
def test_real_runs_get_lora_learning_rates_and_full_budgets(composer, overrides, lr, max_tokens):
    cfg = composer(overrides)
    assert lr[0] <= cfg.optim.lr <= lr[1]
    assert cfg.sampling.max_tokens == cfg.evaluator.max_tokens == max_tokens
    assert cfg.model.lora_rank == 32
    assert cfg.training.max_steps == PLAIN["training.max_steps"] and cfg.optim.schedule == "constant"


def test_explicit_overrides_win(composer):
    cfg = composer(["method=grpo", "dataset=gsm8k", "model=qwen3-8b", "optim.lr=1e-5", "sampling.max_tokens=300"])
    assert cfg.optim.lr == 1e-5 and cfg.sampling.max_tokens == 300 and cfg.evaluator.max_tokens == 300
    # Over the demo's tuning as well.
    cfg = composer(["optim.lr=1e-3", "training.max_steps=5", "sampling.max_tokens=4", "evaluator.max_tokens=6"])
    assert cfg.optim.lr == 1e-3 and cfg.training.max_steps == 5 and cfg.sampling.max_tokens == 4 and cfg.evaluator.max_tokens == 6
    cfg = composer(["model=qwen3-8b", "model.lr=1e-4", "dataset=gsm8k", "dataset.max_tokens=700"])
    assert cfg.optim.lr == 1e-4 and cfg.sampling.max_tokens == 700


def test_bare_default_is_the_tuned_offline_demo(composer):
    cfg = composer([])
    assert (cfg.method._target_, cfg.model.base_model, cfg.dataset._target_) == (
        "tinkerx.methods.sft.SFT", "tinkerx/tiny", "tinkerx.data.arithmetic.Arithmetic")
    assert "sft_tiny_arithmetic" in TUNED
    assert (cfg.optim.lr, cfg.optim.schedule, cfg.optim.warmup_steps) == (3e-3, "cosine", 20)
    assert (cfg.training.batch_size, cfg.training.max_steps, cfg.sampling.max_tokens) == (64, 700, 8)


# What each experiment was tuned with; they keep it whatever the defaults around them do.
EXPERIMENTS = {
    "sft_tiny_arithmetic": {"optim.lr": 3e-3, "optim.schedule": "cosine", "optim.warmup_steps": 20, "training.max_steps": 700, "training.batch_size": 64, "sampling.max_tokens": 8},
    "sft_tiny_mixed_ops": {"optim.lr": 3e-3, "optim.schedule": "cosine", "training.max_steps": 1200, "training.batch_size": 64, "sampling.max_tokens": 8},
    "tiny_sft_short": {"optim.lr": 3e-3, "optim.schedule": "constant", "training.max_steps": 240, "sampling.max_tokens": 8},
    "tiny_grpo": {"optim.lr": 1e-4, "optim.schedule": "constant", "training.batch_size": 32, "training.max_steps": 100, "sampling.max_tokens": 8},
    "smollm2_grpo_arithmetic": {"optim.lr": 2e-4, "training.batch_size": 8, "training.max_steps": 40, "sampling.max_tokens": 16, "model.lora_rank": 16},
    "sft_smollm2_gsm8k": {"optim.lr": 2e-4, "optim.schedule": "cosine", "training.max_steps": 200, "sampling.max_tokens": 256},
    "debate_smollm2_mmlu": {"optim.lr": 1e-4, "training.max_steps": 25, "sampling.max_tokens": 64, "sampling.temperature": 0.7},
    "debate_smollm2_mmlu_dry": {"training.max_steps": 8, "sampling.max_tokens": 64, "method.dry_run": True},
    "distill_tiny_on_policy": {"method.mode": "on_policy", "method.group_size": 1, "optim.lr": 3e-4, "optim.schedule": "cosine", "training.batch_size": 128, "training.max_steps": 160, "sampling.max_tokens": 8},
    "distill_tiny_off_policy": {"method.mode": "off_policy", "optim.lr": 3e-3, "training.max_steps": 240, "sampling.max_tokens": 8},
    "distill_tiny_grpo_baseline": {"optim.lr": 3e-4, "optim.schedule": "cosine", "training.batch_size": 16, "training.max_steps": 160, "sampling.max_tokens": 8},
    "distill_smollm2_arithmetic": {"method.mode": "off_policy", "optim.lr": 1e-3, "training.max_steps": 40, "model.lora_rank": 16, "components.teacher.model.base_model": "tinkerx/tiny"},
    "dpo_tiny_arithmetic": {"method.variant": "ipo", "method.beta": 0.5, "optim.lr": 3e-5, "training.max_steps": 30, "sampling.max_tokens": 8},
}


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_experiments_keep_their_tuned_values(composer, experiment):
    cfg = composer([f"experiment={experiment}"])
    assert {k: _value(cfg, k) for k in EXPERIMENTS[experiment]} == EXPERIMENTS[experiment]


def test_every_experiment_is_pinned_here():
    assert set(EXPERIMENTS) == {p.stem for p in (ROOT / "experiments").glob("*.yaml")}


def test_tuned_files_name_a_real_combination():
    # A misspelt name would silently never apply.
    assert TUNED and TUNED <= {"_".join(c) for c in combinations()}


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
def test_distill_and_dpo_take_the_models_rl_rate_and_the_data_sets_budget(composer, method):
    # The tiny demos' settings (lr 1e-4, 8 tokens) once sat in these methods' YAML and reached Qwen3 on GSM8K.
    cfg = composer([f"method={method}", "model=qwen3-8b", "dataset=gsm8k"])
    assert cfg.optim.lr == cfg.model.rl_lr and cfg.sampling.max_tokens == cfg.dataset.max_tokens == 1024

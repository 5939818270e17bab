"""Published reference bands for the Tinker-hosted models: each experiment reproduces a published
tinker-cookbook run's setup, carries the published figure as a band, and records that band's metric
at its step on the tinker path (checked here with the tiny model against the local Tinker server)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tinkerx.runs.bands import declared

# The setup each source states (tinker-cookbook @ c1b3b6fe: rl_basic.py and math_rl/README.md; the
# rest from math_rl/train.py, rl/train.py), and the figure it publishes for each banded metric.
PUBLISHED = {
    "grpo_llama-3.1-8b_gsm8k": {
        "setup": {"model.base_model": "meta-llama/Llama-3.1-8B", "model.lora_rank": 32, "method.group_size": 16,
                  "training.batch_size": 128, "optim.lr": 4e-5, "sampling.max_tokens": 256, "training.eval_every": 0},
        "figures": {("reward/accuracy", 16): 0.63},  # "about 63% accuracy after 15 iterations"
    },
    "grpo_qwen3-8b_math": {
        "setup": {"model.base_model": "Qwen/Qwen3-8B", "model.lora_rank": 32, "method.group_size": 16,
                  "training.batch_size": 64, "optim.lr": 2e-5, "sampling.max_tokens": 512, "training.eval_every": 20},
        "figures": {("eval/accuracy", 180): 0.767578125},
    },
    "grpo_llama-3.1-8b-instruct_gsm8k": {
        "setup": {"model.base_model": "meta-llama/Llama-3.1-8B-Instruct", "model.lora_rank": 32, "method.group_size": 64,
                  "training.batch_size": 32, "optim.lr": 8e-5, "sampling.max_tokens": 1024, "training.eval_every": 20},
        "figures": {("eval/accuracy", 220): 0.9090, ("reward/accuracy", 10): 0.8},  # 0.8: "goes above 0.8"
    },
    "grpo_llama-3.2-1b_arithmetic": {
        "setup": {"model.base_model": "meta-llama/Llama-3.2-1B", "model.lora_rank": 32, "method.group_size": 4,
                  "training.batch_size": 100, "optim.lr": 1e-4, "sampling.max_tokens": 5, "training.max_steps": 100},
        "figures": {("reward/accuracy", 20): 1.0},  # "reward should go from 0.66 to 1"
    },
}
# The SFT sweep (chat_sl/results/sft_sweep.md @ b939b4f3): Llama-3.1-8B, Tulu 3, lr 3e-4, LoRA rank 64.
SFT_SWEEP = {
    "setup": {"model.base_model": "meta-llama/Llama-3.1-8B", "model.lora_rank": 64, "training.batch_size": 128,
              "optim.lr": 3e-4, "optim.schedule": "linear", "optim.grad_clip_norm": 0.0, "training.max_steps": 100_000 // 128,
              "dataset.path": "allenai/tulu-3-sft-mixture", "dataset.train_on": "last_assistant", "dataset.max_length": 16384,
              "dataset.validation_size": 1024, "method.validation_examples": 1024, "method.validation_every": 20},
    "figures": {("val/loss", 781): 0.5839, ("train/loss", 781): 0.6373},  # Test NLL, Train NLL
}
# What every cookbook RL recipe shares: no KL, temperature 1, no gradient clipping, Adam (0.9, 0.95, 1e-8),
# importance-sampled policy gradient on reward - group mean, summed (tinkerx's base GRPO recipe).
COOKBOOK_RL = {"sampling.temperature": 1.0, "optim.grad_clip_norm": 0.0, "optim.beta1": 0.9, "optim.beta2": 0.95,
               "optim.eps": 1e-8, "method.variant": None, "method.kl_coef": None, "backend._target_": None}


def _composed(compose_config, experiment, *overrides):
    return compose_config([f"experiment={experiment}", "backend=tinker", *overrides])


@pytest.mark.parametrize("experiment", sorted(PUBLISHED))
def test_published_experiment_matches_its_source_and_holds_the_published_figure(compose_config, experiment):
    cfg = _composed(compose_config, experiment)
    setup = {key: OmegaConf.select(cfg, key) for key in PUBLISHED[experiment]["setup"]}
    assert setup == PUBLISHED[experiment]["setup"]
    shared = {key: OmegaConf.select(cfg, key) for key in COOKBOOK_RL}
    assert shared == {**COOKBOOK_RL, "backend._target_": "tinkerx.backends.tinker_backend.TinkerBackend"}

    bands = declared(cfg)  # accepted: every band names a metric this run records at its step
    assert {(b.metric, b.at) for b in bands} == set(PUBLISHED[experiment]["figures"])
    for band in bands:
        assert band.holds(PUBLISHED[experiment]["figures"][(band.metric, band.at)]), band
        assert "tinker-cookbook" in band.source or "tinker-docs.thinkingmachines.ai" in band.source
        assert "correct" in band.reward and "prompt" in band.reward
        if band.metric.startswith("eval/"):  # the held-out evaluation runs at the band's step
            assert band.at % cfg.training.eval_every == 0 and band.at <= cfg.training.max_steps


def test_sft_sweep_cell_matches_its_source_and_holds_the_published_nll(compose_config):
    cfg = _composed(compose_config, "sft_llama-3.1-8b_chat_tulu3")
    assert {key: OmegaConf.select(cfg, key) for key in SFT_SWEEP["setup"]} == SFT_SWEEP["setup"]
    assert (cfg.optim.beta1, cfg.optim.beta2, cfg.optim.eps, cfg.method.loss_fn) == (0.9, 0.95, 1e-8, "cross_entropy")
    bands = declared(cfg)
    assert {(b.metric, b.at) for b in bands} == set(SFT_SWEEP["figures"])
    for band in bands:
        assert band.holds(SFT_SWEEP["figures"][(band.metric, band.at)]), band
        assert "sft_sweep.md @ b939b4f3" in band.source and "NLL" in band.reward


@pytest.mark.parametrize("at, recorded", [(781, True), (780, True), (20, True), (30, False), (790, False)])
def test_validation_loss_band_only_where_validation_runs(compose_config, at, recorded):
    """val/loss is recorded every method.validation_every steps and at the last step; elsewhere the band is refused."""
    from tinkerx.errors import ConfigError

    cfg = _composed(compose_config, "sft_llama-3.1-8b_chat_tulu3", f"bands.0.at={at}")
    if recorded:
        assert declared(cfg)[0].at == at
    else:
        with pytest.raises(ConfigError, match=r"bands\[0\]: val/loss is not recorded at step|the run stops at step 781"):
            declared(cfg)
    with pytest.raises(ConfigError, match="validation every no steps"):
        declared(_composed(compose_config, "sft_llama-3.1-8b_chat_tulu3", "method.validation_every=0"))


@pytest.mark.parametrize("experiment", ["grpo_llama-3.1-8b_gsm8k", "grpo_qwen3-8b_math", "grpo_llama-3.1-8b-instruct_gsm8k"])
def test_boxed_prompt_is_the_cookbooks_question_suffix(compose_config, experiment):
    from hydra.utils import instantiate

    from tinkerx.example import Example

    cfg = _composed(compose_config, experiment)
    prompt = instantiate(cfg.dataset.prompt)
    user = prompt.messages(Example(question="What is 1+1?", answer="2"))
    # math_rl/math_env.py MathEnv.question_suffix: " Write your answer in \boxed{} format."
    assert user == [{"role": "user", "content": "What is 1+1? Write your answer in \\boxed{} format."}]
    assert cfg.reward._target_ == "tinkerx.rewards.math_equivalence.MathEquivalenceReward"


@pytest.mark.parametrize("experiment", ["grpo_qwen3-8b_math", "grpo_llama-3.1-8b-instruct_gsm8k"])
def test_held_out_evaluation_is_the_cookbooks(compose_config, experiment):
    # The cookbook's test evaluation: every test problem, one sample at temperature 1, the run's token budget.
    ev = _composed(compose_config, experiment).evaluator
    assert (ev.max_examples, ev.temperature, ev.num_samples, ev.max_tokens) == (None, 1.0, 1, PUBLISHED[experiment]["setup"]["sampling.max_tokens"])


def test_the_published_run_s_real_settings_stay_out_of_plain_runs(compose_config):
    # The bands and the cookbook's settings belong to the experiments, not to the models they name.
    cfg = compose_config(["method=grpo", "model=llama-3.1-8b", "dataset=gsm8k", "backend=tinker"])
    assert cfg.get("bands") is None
    assert cfg.optim.lr == cfg.model.rl_lr and cfg.sampling.max_tokens == cfg.dataset.max_tokens == 1024


# --- on the tinker path: the band's metric recorded at its step ---------------------------------------
# The tiny model stands in for the hosted one; the run is cut to 2 steps and the band moved to step 2
# (its step otherwise lies past the shortened run), everything else as the experiment ships.

TINY = ["model=tiny", "training.max_steps=2", "training.batch_size=2", "training.save_every=0", "method.samples_per_step=0"]


def _judged(summary: dict, metric: str, at: int) -> dict:
    (band,) = [b for b in summary["bands"] if (b["metric"], b["at"]) == (metric, at)]
    return band


@pytest.mark.slow
def test_step_band_is_recorded_on_the_tinker_path(tinker_server, tmp_path):
    from tests.helpers.tinker_server import tinker_cli

    summary = tinker_cli(["experiment=grpo_llama-3.2-1b_arithmetic", *TINY, "method.group_size=2", "evaluator.max_examples=4",
                          "bands.0.at=2"], tmp_path / "run", tinker_server)  # fmt: skip
    band = _judged(summary, "reward/accuracy", 2)
    assert isinstance(band["value"], (int, float)) and 0.0 <= band["value"] <= 1.0
    assert band["verdict"] == ("inside" if band["value"] >= 0.9 else "outside") and summary["band"] == band["verdict"]
    assert "tinker-cookbook" in band["source"]


@pytest.mark.slow
def test_held_out_band_is_recorded_on_the_tinker_path(tinker_server, tmp_path, shared_data):
    from tests.helpers.tinker_server import tinker_cli

    gsm8k = shared_data / "gsm8k"
    summary = tinker_cli(["experiment=grpo_llama-3.1-8b-instruct_gsm8k", *TINY, "method.group_size=2",
                          f"dataset.path={gsm8k / 'train.jsonl'}", f"dataset.test_path={gsm8k / 'test.jsonl'}",
                          "dataset.max_train=16", "dataset.validation_size=2", "dataset.max_tokens=8", "sampling.max_tokens=8",
                          "evaluator.max_examples=3", "training.eval_every=2", "bands.0.at=2", "bands.1.at=1"],
                         tmp_path / "run", tinker_server)  # fmt: skip
    held_out = _judged(summary, "eval/accuracy", 2)
    assert isinstance(held_out["value"], (int, float)) and held_out["verdict"] in ("inside", "outside")
    # A tiny random model solves no GSM8K problem: its held-out accuracy is far below the published band.
    assert held_out["value"] < 0.87 and held_out["verdict"] == "outside" and summary["band"] == "outside"
    assert isinstance(_judged(summary, "reward/accuracy", 1)["value"], (int, float))


@pytest.mark.slow
def test_validation_loss_band_is_recorded_on_the_tinker_path(tinker_server, tmp_path, shared_data):
    from tests.helpers.tinker_server import tinker_cli

    conversations = shared_data / "oasst1_en100" / "oasst_en100_messages.jsonl"
    # validation_size 40: most OASST conversations exceed the tiny model's 512 tokens and are dropped.
    summary = tinker_cli(["experiment=sft_llama-3.1-8b_chat_tulu3", *TINY[:-1], "model.lora_rank=0", f"dataset.path={conversations}",
                          "dataset.max_length=512", "dataset.validation_size=40", "dataset.test_size=4", "method.validation_examples=40",
                          "evaluator.max_examples=1", "sampling.max_tokens=4", "bands.0.at=2", "bands.1.at=2"],
                         tmp_path / "run", tinker_server)  # fmt: skip
    for metric in ("val/loss", "train/loss"):
        band = _judged(summary, metric, 2)
        # A tiny random byte-level model is far from an 8B model's NLL on its own tokens: outside, and recorded.
        assert isinstance(band["value"], (int, float)) and band["value"] > 0.74 and band["verdict"] == "outside"
    assert summary["band"] == "outside"

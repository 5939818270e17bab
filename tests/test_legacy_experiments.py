"""Run folders written before experiments were renamed and ``experiments/tuned/`` removed still
reproduce: ``tests/fixtures/legacy_runs`` holds two such folders made by tinkerx at commit 41c5341
(the default SFT run, whose tuned file applied silently, and ``experiment=tiny_grpo``), shrunk to
what reproduce reads (``.hydra/``, ``config.yaml``, ``environment.json``, ``metrics.jsonl``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers.cli import run_cli
from tinkerx.errors import UserError
from tests.helpers.runs import assert_same_run_up_to_float_rounding, metrics_without_time_or_usage
from tinkerx.runs.legacy_experiments import RENAMED_EXPERIMENTS, modernize
from tinkerx.paths import EXPERIMENT_DIR

LEGACY_RUNS = Path(__file__).parent / "fixtures" / "legacy_runs"


def test_every_renamed_experiment_exists_today():
    missing = [new for new in RENAMED_EXPERIMENTS.values() if not (EXPERIMENT_DIR / f"{new}.yaml").is_file()]
    assert not missing
    assert not any((EXPERIMENT_DIR / f"{old}.yaml").exists() for old in RENAMED_EXPERIMENTS)


def test_an_old_experiment_name_is_renamed_in_choices_and_overrides():
    choices, task = modernize({"experiment": "tiny_grpo", "method": "grpo"}, ["experiment=tiny_grpo", "seed=1"], Path("nowhere"))
    assert choices == {"experiment": "grpo_tiny_arithmetic", "method": "grpo"}
    assert task == ["experiment=grpo_tiny_arithmetic", "seed=1"]


def test_the_tuned_group_becomes_the_values_the_run_resolved():
    choices, task = modernize({"experiment/tuned": "sft_tiny_arithmetic", "experiment": None}, ["training.max_steps=3"],
                              LEGACY_RUNS / "sft_default")
    assert "experiment/tuned" not in choices
    # max_steps was on the command line and stays as given; the rest come from config.yaml.
    assert task == ["training.max_steps=3", "optim.schedule=cosine", "optim.warmup_steps=20",
                    "training.batch_size=64", "sampling.max_tokens=8"]


def test_a_run_of_today_is_left_alone():
    choices = {"experiment": "grpo_tiny_arithmetic", "method": "grpo"}
    assert modernize(choices, ["seed=1"], Path("nowhere")) == (choices, ["seed=1"])


def test_a_combination_that_had_no_tuned_file_adds_nothing():
    # Hydra recorded experiment/tuned=grpo_tiny_gsm8k for such a run although no file of that name existed.
    choices = {"experiment/tuned": "grpo_tiny_gsm8k", "experiment": None, "method": "grpo", "dataset": "gsm8k"}
    assert modernize(choices, ["seed=1"], Path("nowhere")) == ({"experiment": None, "method": "grpo", "dataset": "gsm8k"}, ["seed=1"])


def test_a_tuned_run_without_its_resolved_config_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="needs its config.yaml"):
        modernize({"experiment/tuned": "sft_tiny_arithmetic"}, [], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sft_default", "grpo_tiny_grpo"])
def test_a_pre_change_run_folder_reproduces(name, tmp_path):
    """Line for line on the CPU the fixtures were recorded on; on a CPU with other kernels (AVX2 vs
    AVX512) the same samples and counts with training floats within rounding, and reproduce says which."""
    original = LEGACY_RUNS / name
    out = tmp_path / "reproduced"
    result = run_cli([str(original), f"hydra.run.dir={out}"], module="tinkerx.reproduce", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    verdict = result.stderr.strip().splitlines()[-1]
    if "matches the original line for line" not in verdict:
        rounding = re.search(r"floats within (\S+) relative; the original run did not record its CPU", verdict)
        assert rounding and float(rounding.group(1)) < 1e-4, verdict
    # Recorded before tokens were metered: the reproduction's usage/ keys are new, not a difference.
    assert_same_run_up_to_float_rounding(metrics_without_time_or_usage(out), metrics_without_time_or_usage(original))
    # What ran is what ran then, value for value (the resolved config holds no paths or times); keys
    # added since (e.g. training.max_tokens_per_forward) may appear beside them, at their defaults.
    then, now = (OmegaConf.to_container(OmegaConf.load(d / "config.yaml")) for d in (original, out))
    assert _flat(then).items() <= _flat(now).items(), sorted(set(_flat(then).items()) - set(_flat(now).items()))[:5]


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat.update(_flat(value, name + ".") if isinstance(value, dict) else {name: json.dumps(value)})
    return flat

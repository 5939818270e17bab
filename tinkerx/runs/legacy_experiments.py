"""Today's group choices and overrides for a run folder written before experiments were renamed.

Until then an experiment could be named in any word order (``tiny_grpo``), and a hidden group,
``experiment/tuned``, applied ``experiments/tuned/METHOD_MODEL_DATASET.yaml`` by itself whenever
the run's method, model and data set matched. Re-composing such a run (``tinkerx.reproduce``)
needs the new experiment names, and for the vanished tuned file the values it set: they are
taken from the run's own resolved ``config.yaml``, which holds exactly what ran.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tinkerx.errors import UserError

# Experiment names before the METHOD_MODEL_DATASET[_VARIANT] order, and their names today.
RENAMED_EXPERIMENTS = {
    "tiny_grpo": "grpo_tiny_arithmetic",
    "smollm2_grpo_arithmetic": "grpo_smollm2_arithmetic",
    "tiny_sft_short": "sft_tiny_arithmetic_short",
    "sft_tiny_mixed_ops": "sft_tiny_arithmetic_mixed_ops",
    "distill_tiny_on_policy": "distill_tiny_arithmetic_on_policy",
    "distill_tiny_off_policy": "distill_tiny_arithmetic_off_policy",
    "distill_tiny_grpo_baseline": "grpo_tiny_arithmetic_distill_baseline",
}

TUNED_GROUP = "experiment/tuned"

# The keys each file of the former tuned group set (experiments/tuned/NAME.yaml).
TUNED_KEYS = {
    "sft_tiny_arithmetic": ("optim.schedule", "optim.warmup_steps", "training.batch_size", "training.max_steps", "sampling.max_tokens"),
    "grpo_tiny_arithmetic": ("optim.lr", "training.batch_size", "training.max_steps", "sampling.max_tokens"),
    "debate_tiny_mmlu_stem": ("optim.lr", "training.max_steps", "sampling.max_tokens"),
}

_PLAIN_VALUE = re.compile(r"^[\w.+-]+$")


def modernize(choices: Mapping[str, Any], task: list[str], run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """``(choices, task overrides)`` of a run's ``.hydra/hydra.yaml`` as they compose today.

    Runs written after the change come back unchanged; so do older runs whose method x model x
    data set had no tuned file and whose experiment kept its name. Keys the task overrides already set are
    not repeated: they win over the tuned file, as they did when the run was made.
    """
    choices = dict(choices)
    tuned = choices.pop(TUNED_GROUP, None)
    task = [_renamed(o) for o in task if override_key(o) != TUNED_GROUP]
    if choices.get("experiment") in RENAMED_EXPERIMENTS:
        choices["experiment"] = RENAMED_EXPERIMENTS[choices["experiment"]]
    # Hydra recorded the interpolated name for every run, also where no such file existed (the entry
    # was optional): only these three files ever did, and the keys they set never changed.
    if tuned not in TUNED_KEYS:
        return choices, task
    already_set = {override_key(o) for o in task}
    resolved = _resolved_config(run_dir)
    tuned_overrides = [f"{key}={override_value(OmegaConf.select(resolved, key))}" for key in TUNED_KEYS[tuned] if key not in already_set]
    return choices, task + tuned_overrides


def _renamed(override: str) -> str:
    key, sep, value = override.partition("=")
    if sep and key.lstrip("+~") == "experiment" and value in RENAMED_EXPERIMENTS:
        return f"{key}={RENAMED_EXPERIMENTS[value]}"
    return override


def _resolved_config(run_dir: Path) -> Any:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(f"cannot reproduce {run_dir}: it predates experiment renames and needs its config.yaml for the tuned values it ran with, which is missing")
    return OmegaConf.load(path)


def override_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it back: strings quoted unless plainly a word."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN_VALUE.match(text) and not _looks_like_number(text) and text.lower() not in ("true", "false", "null"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _looks_like_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def override_key(override: str) -> str:
    """The config key an override sets (``+key=``, ``~key`` included)."""
    return override.split("=", 1)[0].lstrip("+~")

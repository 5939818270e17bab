"""The code-RL demo's chain, short: experiment=sft_tiny_py_functions, then experiment=grpo_tiny_py_functions
from its final checkpoint, both through the CLI as a user runs them (one torch thread).

The shipped recipe takes minutes (600 SFT steps from the main job's model, 150 on imperfect
demonstrations, 150 GRPO steps); here the SFT starts from random weights on a data set cut to additions
of 0-19, so that 60 SFT steps teach the shape and the training tasks' numbers, and GRPO's samples at
temperature 1 mix passes and failures: the groups carry signal, the outcomes are counted per step,
and the update moves the weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.resume import run_until_killed
from tests.helpers.runs import metrics_rows
from tinkerx.sandbox import OUTCOMES

pytestmark = pytest.mark.slow

SMALL = ["dataset.operations=[+]", "dataset.max_number=19", "dataset.validation_size=2", "dataset.test_size=4"]
# method.init_from=null: from random weights (the shipped recipe starts from the main job's model).
SFT = ["experiment=sft_tiny_py_functions", "method.init_from=null", *SMALL, "training.max_steps=60", "training.batch_size=16", "optim.warmup_steps=5",
       "training.eval_every=0", "method.validation_every=0", "training.save_every=0"]
GRPO_STEPS, PROMPTS, GROUP = 3, 4, 8


def _weights(run_dir: Path) -> bytes:
    return (Path(json.loads((run_dir / "summary.json").read_text())["checkpoint"]) / "weights.safetensors").read_bytes()


@pytest.mark.timeout(300)
def test_grpo_on_generated_functions_from_the_sft_warm_start(tmp_path):
    warm = tmp_path / "sft"
    done = run_until_killed(SFT, warm)
    assert done.returncode == 0, done.stderr[-3000:]
    sft = json.loads((warm / "summary.json").read_text())
    assert sft["status"] == "finished" and "pass@1" in sft["baseline"] and "pass@1" in sft["final"]
    # Random weights run to the token budget; the warm start has learned to write one line and stop.
    assert sft["baseline"]["truncation_rate"] == 1.0 and sft["final"]["truncation_rate"] == 0.0

    rl = tmp_path / "grpo"
    done = run_until_killed(["experiment=grpo_tiny_py_functions", *SMALL, f"method.init_from={warm}",
                             f"training.max_steps={GRPO_STEPS}", f"training.batch_size={PROMPTS}", f"method.group_size={GROUP}",
                             "training.eval_every=0", "training.save_every=0"], rl)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [r for r in metrics_rows(rl) if "reward/mean" in r]
    assert len(steps) == GRPO_STEPS
    # Every sampled program ran in the sandbox and was counted under one outcome, step by step.
    assert all(sum(r[f"code/{k}"] for k in OUTCOMES) == PROMPTS * GROUP for r in steps), steps
    assert sum(r["code/passed"] for r in steps) > 0 and sum(r["code/failed"] for r in steps) > 0
    # Groups that mix passes and failures are what GRPO learns from: some, and the update ran on them.
    assert sum(r["groups/signal"] for r in steps) > 0 and sum(r["train/datums"] for r in steps) > 0
    assert _weights(rl) != _weights(warm)
    summary = json.loads((rl / "summary.json").read_text())
    assert summary["status"] == "finished"
    for when in ("baseline", "final"):
        assert summary[when]["num_examples"] == 4 and 0.0 <= summary[when]["pass@1"] <= 1.0
        assert sum(summary[when][f"code/{k}"] for k in OUTCOMES) == 4

"""Long data never takes the machine down: real runs under a 6 GB address-space limit finish with
the over-long examples counted, or stop with one line -- never a kill or a traceback.

Each run is ``python -m tinkerx ...`` under ``ulimit -v 6000000`` (torch and transformers start
under it: it limits what the process maps, which is what a runaway allocation grows).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OASST = SHARED / "oasst1_en100" / "oasst_en100_pairs.jsonl"
HH = SHARED / "hh_rlhf" / "harmless-base-test.prompt_chosen_rejected.jsonl"
ADDRESS_SPACE_KB = 6_000_000

pytestmark = pytest.mark.slow


def run_limited(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "TINKER_TELEMETRY": "0", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = " ".join(["ulimit -v", str(ADDRESS_SPACE_KB), ";", "exec", sys.executable, "-m", "tinkerx", *(f"'{a}'" for a in args)])
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def assert_clean(result: subprocess.CompletedProcess) -> None:
    """Finished (0) or a one-line user error (2); never killed (negative / 137) nor a traceback."""
    output = result.stdout + result.stderr
    assert result.returncode in (0, 2), (result.returncode, output[-3000:])
    assert "Traceback" not in output, output[-3000:]
    if result.returncode == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("tinkerx: error:")]
        assert len(errors) == 1, result.stderr[-2000:]


def test_address_space_limit_lets_torch_start():
    result = subprocess.run(["bash", "-c", f"ulimit -v {ADDRESS_SPACE_KB}; {sys.executable} -c 'import torch, transformers; print(torch.ones(3).sum().item())'"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "3.0", result.stderr[-2000:]


@pytest.mark.skipif(not OASST.is_file(), reason="../shared/data/oasst1_en100 is absent")
def test_the_issues_dpo_command_on_oasst_pairs_trains_on_the_conversations(tmp_path):
    # Message-list pairs are read as conversations now (tinkerx/data/conversation_pairs.py): the
    # command runs, on the file's first 40 pairs to keep it short (their long replies cut to fit the tiny model).
    subset = tmp_path / "oasst.jsonl"
    subset.write_text("".join(OASST.read_text(encoding="utf-8").splitlines(keepends=True)[:40]), encoding="utf-8")
    result = run_limited(["method=dpo", "model=tiny", "dataset=preference_jsonl", f"dataset.path={subset}", "dataset.test_size=8", "dataset.overlong=truncate",
                          "training.max_steps=2", "training.batch_size=4", "~reward", "~evaluator", f"hydra.run.dir={tmp_path / 'run'}"])  # fmt: skip
    assert_clean(result)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "pairs.jsonl").read_text().splitlines()]
    assert rows and all("[{" not in row["prompt"] for row in rows)  # no Python repr of a message list anywhere


@pytest.mark.skipif(not HH.is_file(), reason="../shared/data/hh_rlhf is absent")
def test_dpo_on_hh_rlhf_pairs_drops_and_counts_the_long_ones(tmp_path):
    # The file's first 240 pairs (a third of them run past the tiny model's 512-token context): a minute, not ten.
    subset = tmp_path / "hh.jsonl"
    subset.write_text("".join(HH.read_text(encoding="utf-8").splitlines(keepends=True)[:240]), encoding="utf-8")
    run = tmp_path / "run"
    result = run_limited(["method=dpo", "model=tiny", "dataset=preference_jsonl", f"dataset.path={subset}", "dataset.test_size=40",
                          "training.max_steps=3", "training.batch_size=8", "~reward", "~evaluator", f"hydra.run.dir={run}"])  # fmt: skip
    assert_clean(result)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 3
    over = summary["overlong"]
    assert over["limit"] == 512 and over["rule"] == "drop"
    assert over["train"]["dropped"] > 0 and over["train"]["longest"] > 512
    assert summary["pairs"]["train"] == over["train"]["checked"] - over["train"]["dropped"]
    step0 = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert step0["step"] == 0 and step0["data/train_dropped"] == over["train"]["dropped"]
    assert "examples longer than model.context_length=512" in result.stdout + result.stderr


def _long_answers(path: Path, rows: int = 16, every: int = 2, length: int = 2600) -> Path:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            n = length if i % every == 0 else rng.randint(10, 60)  # characters: the tiny model's tokens are bytes
            answer = " ".join(rng.choice(["alpha", "beta", "gamma"]) for _ in range(n // 4))[:n]
            f.write(json.dumps({"question": f"Write about topic {i}.", "answer": answer}) + "\n")
    return path


def test_sft_on_2600_token_answers_drops_them_on_a_512_token_model(tmp_path):
    data = _long_answers(tmp_path / "long.jsonl")
    run = tmp_path / "run"
    result = run_limited(["dataset=jsonl", f"dataset.path={data}", "dataset.validation_size=2", "dataset.test_size=2", "reward=exact_match",
                          "training.max_steps=2", "training.batch_size=4", "method.evaluate_baseline=false", "evaluator.max_tokens=8",
                          f"hydra.run.dir={run}"])  # fmt: skip
    assert_clean(result)
    assert result.returncode == 0, result.stderr[-2000:]
    over = json.loads((run / "summary.json").read_text())["overlong"]
    assert over["train"]["dropped"] >= 5 and over["train"]["longest"] > 2600


def test_sft_on_2600_token_answers_that_fit_the_context_trains_within_the_limit(tmp_path):
    """A 4096-token tiny model: nothing is dropped, and a batch of eight 2,600-token examples must
    train within 6 GB (micro-batches under the budget the limit allows) or stop with one line."""
    data = _long_answers(tmp_path / "long.jsonl", rows=20, every=1)
    run = tmp_path / "run"
    result = run_limited(["dataset=jsonl", f"dataset.path={data}", "dataset.validation_size=2", "dataset.test_size=2", "reward=exact_match",
                          "model.loader.max_position_embeddings=4096", "training.max_steps=1", "training.batch_size=8",
                          "method.evaluate_baseline=false", "method.validation_every=0", "evaluator.max_tokens=4", "evaluator.max_examples=1",
                          f"hydra.run.dir={run}"])  # fmt: skip
    assert_clean(result)
    if result.returncode == 2:
        assert "out of memory" in result.stderr and "training.max_tokens_per_forward" in result.stderr
    else:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "finished" and "overlong" not in summary


def test_running_out_of_memory_anyway_is_one_line_naming_the_keys(tmp_path):
    """A budget far above what 6 GB holds (forced): the allocator fails mid-step, the run says so in one line."""
    data = _long_answers(tmp_path / "long.jsonl", rows=40, every=1, length=4000)
    result = run_limited(["dataset=jsonl", f"dataset.path={data}", "dataset.validation_size=2", "dataset.test_size=2", "reward=exact_match",
                          "model.loader.max_position_embeddings=4096", "model.loader.hidden_size=512", "model.loader.intermediate_size=2048",
                          "training.max_steps=1", "training.batch_size=32", "training.max_tokens_per_forward=1000000",
                          "method.evaluate_baseline=false", "method.validation_every=0", f"hydra.run.dir={tmp_path / 'run'}"])  # fmt: skip
    assert_clean(result)
    assert result.returncode == 2, result.stdout[-2000:]
    assert "out of memory in forward_backward of step 1" in result.stderr and "training.max_tokens_per_forward=1000000" in result.stderr

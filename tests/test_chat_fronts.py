"""Chat SFT and conversation DPO through the other doors: backend=tinker against the local server,
and ``tinkerx.resume`` after a kill, ending where an uninterrupted run ends."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.helpers.resume import resume, run_until_killed, summary_without_paths
from tests.helpers.runs import metrics_without_time
from tests.helpers.tinker_server import tinker_cli

pytestmark = pytest.mark.slow


def _conversations(path: Path, n: int) -> Path:
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"{i}+1?"}, {"role": "assistant", "content": str(i + 1)},
                          {"role": "user", "content": "and +2?"}, {"role": "assistant", "content": str(i + 2)}]} for i in range(n)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sft(path: Path) -> list[str]:
    return ["model=tiny", "method=sft", "dataset=chat", f"dataset.path={path}", "dataset.test_size=6", "dataset.validation_size=4", "~reward",
            "training.max_steps=6", "training.batch_size=4", "training.save_every=2", "training.eval_every=0", "method.validation_every=3",
            "evaluator.max_examples=3", "sampling.max_tokens=4", "sampling.temperature=0", "optim.lr=3e-3", "training.keep_checkpoints=null"]  # fmt: skip


def test_chat_sft_killed_and_resumed_equals_uninterrupted(tmp_path):
    args = _sft(_conversations(tmp_path / "c.jsonl", 40))
    reference = run_until_killed(args, tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]
    killed = run_until_killed(args, tmp_path / "killed", "step:5")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = resume(tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metrics_without_time(tmp_path / "killed") == metrics_without_time(tmp_path / "reference")
    assert summary_without_paths(tmp_path / "killed") == summary_without_paths(tmp_path / "reference")


def test_chat_sft_and_conversation_dpo_through_the_tinker_sdk(tinker_server, tmp_path):
    summary = tinker_cli(_sft(_conversations(tmp_path / "c.jsonl", 24)), tmp_path / "sft", tinker_server)
    assert summary["checkpoint"].startswith("tinker://") and summary["steps"] == 6
    assert summary["final"]["nll"] < summary["baseline"]["nll"]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": f"{i}+1?"}], "chosen": [{"role": "assistant", "content": str(i + 1)}],
                                         "rejected": [{"role": "assistant", "content": "no"}]}) + "\n" for i in range(12)))  # fmt: skip
    dpo = tinker_cli(["model=tiny", "method=dpo", "dataset=preference_jsonl", f"dataset.path={pairs}", "dataset.test_size=3", "~reward", "~evaluator",
                      "training.max_steps=2", "training.batch_size=4", "training.eval_every=0"], tmp_path / "dpo", tinker_server)  # fmt: skip
    assert dpo["steps"] == 2 and dpo["pairs"] == {"train": 9, "test": 3}

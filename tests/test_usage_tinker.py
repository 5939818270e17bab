"""The meter on the real tinker SDK's clients (against the local Tinker server): the same run counts
the same tokens, step by step, as on the in-process backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.tinker_server import run_with_key

pytestmark = pytest.mark.slow

SFT = ["method=sft", "training.max_steps=2", "training.batch_size=8", "evaluator.max_examples=8", "method.validation_examples=8"]


def _usage_lines(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k.startswith("usage/") or k == "step"} for m in lines]


def test_the_sdk_and_the_local_backend_count_the_same_tokens(tinker_server, tmp_path):
    run_with_key([*SFT, "backend=tinker", f"backend.base_url={tinker_server}"], tmp_path / "tinker")
    run_with_key([*SFT, "backend=local"], tmp_path / "local")
    sdk, local = _usage_lines(tmp_path / "tinker"), _usage_lines(tmp_path / "local")
    assert sdk == local and sdk[-1]["usage/train_tokens"] > 0 and sdk[0]["usage/sample_tokens"] > 0
    usage = [json.loads((tmp_path / run / "summary.json").read_text())["usage"] for run in ("tinker", "local")]
    assert usage[0]["total_tokens"] == usage[1]["total_tokens"] and usage[0]["cost"].startswith("unknown")

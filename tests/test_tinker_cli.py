"""End to end through the CLI: ``python -m tinkerx.serve`` in one process, ``python -m tinkerx
backend=tinker`` in another, talking Tinker's HTTP protocol through the unmodified SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.tinker_server import KEY, run_with_key, start_server
from tinkerx.serve.runner import free_port

pytestmark = pytest.mark.slow

# Small but real: a few steps, a short held-out evaluation, a short validation pass.
SFT = ["method=sft", "training.max_steps=3", "training.batch_size=8", "evaluator.max_examples=8", "method.validation_examples=16"]


@pytest.fixture(scope="module")
def server(tinker_server):
    """The module's local Tinker server (conftest's ``tinker_server``)."""
    return tinker_server


def _applied(server: str, checkpoint: str) -> dict[str, int]:
    """How many operations of each kind the server applied to the model a run trained."""
    model_id = checkpoint.removeprefix("tinker://").split("/")[0]
    return httpx.get(f"{server}/tinkerx/stats").json()["models"][model_id]


def _metrics(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in lines]


def _scan_for_key(run_dir: Path) -> list[str]:
    return [str(p) for p in run_dir.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


def test_sft_through_the_sdk_matches_local_and_replays(server, tmp_path):
    tinker_run, local_run, replay_run = tmp_path / "tinker", tmp_path / "local", tmp_path / "replay"
    run_with_key([*SFT, "backend=tinker", f"backend.base_url={server}"], tinker_run)
    summary = json.loads((tinker_run / "summary.json").read_text())
    assert summary["checkpoint"].startswith("tinker://") and summary["steps"] == 3
    applied = _applied(server, summary["checkpoint"])
    assert (applied["forward_backward"], applied["optim_step"]) == (3, 3)
    assert (tinker_run / "http_traffic.yaml").stat().st_size > 0
    assert _scan_for_key(tinker_run) == []

    # Parity: the same steps on the in-process backend give the same losses.
    run_with_key([*SFT, "backend=local"], local_run)
    for got, want in zip(_metrics(tinker_run), _metrics(local_run), strict=True):
        for name in ("train/loss", "val/loss"):
            if name in want:
                assert got[name] == pytest.approx(want[name], rel=1e-5), name

    # Replay: no server (a dead port) and no key, yet the same run comes out.
    traffic = tinker_run / "http_traffic.yaml"
    run_with_key([*SFT, "backend=tinker", "backend.base_url=http://127.0.0.1:9", f"backend.replay={traffic}"], replay_run, key=None)
    assert _metrics(replay_run) == _metrics(tinker_run)
    replayed = json.loads((replay_run / "summary.json").read_text())
    assert (replayed["baseline"], replayed["final"]) == (summary["baseline"], summary["final"])


def test_sft_completes_through_injected_faults(tmp_path):
    faults = ["server.faults.rate_429=0.1", "server.faults.rate_503=0.1", "server.faults.slow_rate=0.05", "server.faults.slow_s=0.5"]
    process, url = start_server(tmp_path, *faults)
    try:
        run_with_key([*SFT, "backend=tinker", f"backend.base_url={url}"], tmp_path / "faulty")
        run_with_key([*SFT, "backend=local"], tmp_path / "local")
        summary = json.loads((tmp_path / "faulty" / "summary.json").read_text())
        applied = _applied(url, summary["checkpoint"])
        counts = httpx.get(f"{url}/tinkerx/stats").json()["faults"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert min(counts.values()) > 0, counts
    assert (applied["forward_backward"], applied["optim_step"]) == (3, 3)  # none lost, none applied twice
    got, want = _metrics(tmp_path / "faulty"), _metrics(tmp_path / "local")
    assert [m["train/loss"] for m in got] == pytest.approx([m["train/loss"] for m in want], rel=1e-5)


def test_grpo_through_the_sdk(server, tmp_path):
    run_dir = tmp_path / "grpo"
    args = ["method=grpo", "training.max_steps=2", "training.batch_size=2", "method.group_size=2", "evaluator.max_examples=4", "training.eval_every=0"]
    run_with_key([*args, "backend=tinker", f"backend.base_url={server}"], run_dir)
    assert [m["step"] for m in _metrics(run_dir) if m["step"] > 0] == [1, 2]
    assert _scan_for_key(run_dir) == []
    assert "/api/v1/asample" in (run_dir / "http_traffic.yaml").read_text()


def test_overlapped_grpo_through_the_sdk(server, tmp_path):
    """The next step's sample requests go out before the update, through the SDK's futures."""
    run_dir = tmp_path / "grpo"
    args = ["method=grpo", "training.max_steps=3", "training.batch_size=2", "method.group_size=2", "evaluator.max_examples=4",
            "training.eval_every=0", "method.evaluate_baseline=false", "method.overlap_rollouts=true"]
    run_with_key([*args, "backend=tinker", f"backend.base_url={server}"], run_dir)
    rows = [m for m in _metrics(run_dir) if m["step"] > 0]
    assert [m["step"] for m in rows] == [1, 2, 3]
    assert rows[0]["sample/staleness"] == 0 and all(m["sample/staleness"] <= 1 for m in rows)


def test_missing_key_fails_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TINKER_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "tinkerx", "backend=tinker", "backend.base_url=http://127.0.0.1:9", f"hydra.run.dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "needs an API key" in result.stderr and "Traceback" not in result.stderr

"""Resume on the Tinker backend, against the local Tinker-compatible server.

The checkpoint is Tinker's own (``save_state`` → a ``tinker://`` path, restored with
``create_training_client_from_state_with_optimizer``). Two cases: the client is killed and resumed
against the same server; the client is killed, the server restarted (same state folder, new port)
and the run resumed against the new address. SFT with greedy evaluation is deterministic on this
server, so the resumed run must equal an uninterrupted one — which it can only if the optimizer
state came back with the weights.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.helpers.resume import resume, run_module, summary_without_paths
from tests.helpers.runs import metrics_without_time
from tests.helpers.tinker_server import KEY, start_server

pytestmark = pytest.mark.slow

SFT = [
    "method=sft", "model=tiny", "dataset=arithmetic", "optim.lr=3e-3", "sampling.max_tokens=8",
    "dataset.train_size=200", "dataset.validation_size=16", "dataset.test_size=16",
    "training.max_steps=8", "training.batch_size=8", "training.save_every=3", "method.validation_every=4",
    "backend=tinker",
]  # fmt: skip


def _run(run_dir, url, kill_at=None):
    env = {"TINKER_API_KEY": KEY, "TINKER_TELEMETRY": "0", **({"TINKERX_KILL_AT": kill_at} if kill_at else {})}
    return run_module([*SFT, f"backend.base_url={url}", f"hydra.run.dir={run_dir}"], env=env)


def _resume_at(run_dir, url):
    os.environ["TINKER_API_KEY"] = KEY
    try:
        return resume(run_dir, f"backend.base_url={url}")
    finally:
        os.environ.pop("TINKER_API_KEY", None)


def test_resume_through_the_sdk_with_and_without_a_server_restart(tmp_path):
    state = tmp_path / "serve"
    state.mkdir()
    process, url = start_server(state)
    try:
        reference = tmp_path / "reference"
        assert _run(reference, url).returncode == 0

        same_server = tmp_path / "same_server"
        assert _run(same_server, url, "step:5").returncode == -signal.SIGKILL
        resumed = _resume_at(same_server, url)
        assert resumed.returncode == 0, resumed.stderr[-3000:]

        restarted = tmp_path / "restarted"
        assert _run(restarted, url, "step:7").returncode == -signal.SIGKILL
    finally:
        process.terminate()
        process.wait(timeout=30)
    process, url = start_server(state)  # same state folder: its tinker:// checkpoints are still there
    try:
        resumed = _resume_at(restarted, url)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
    finally:
        process.terminate()
        process.wait(timeout=30)

    for run_dir, step in ((same_server, 3), (restarted, 6)):
        manifest = json.loads((run_dir / "resume" / f"step_{step:06d}" / "manifest.json").read_text())
        assert manifest["checkpoints"]["policy"].startswith("tinker://")
        assert metrics_without_time(run_dir) == metrics_without_time(reference), run_dir.name
        assert summary_without_paths(run_dir) == summary_without_paths(reference)
        # vcrpy writes a recording when its session ends, so a SIGKILLed session leaves none; the
        # resumed session's recording is there, and would not replace an earlier one (_new_cassette_path).
        assert (run_dir / "http_traffic.yaml").is_file()

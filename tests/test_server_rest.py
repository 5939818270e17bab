"""The SDK's surface beyond training and sampling, against ``tinkerx.serve``: the tokenizer,
the RestClient management calls, and a 404 naming each call that is not served."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tinker

from tests.server_client import BASE, KEY, RawClient, sdk_env  # noqa: F401  (sdk_env: autouse)
from tinkerx.serve.context import ServerConfig
from tinkerx.serve.runner import local_server



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tinkerx.models.tiny import TinyModel

    with local_server(TinyModel(), tmp_path_factory.mktemp("server"), ServerConfig(poll_hold_s=2)) as server:
        yield server


def test_get_tokenizer_works_offline_for_the_served_model(server):
    # A fresh process: HF_HUB_OFFLINE is read when huggingface_hub is first imported.
    script = f"""
import tinker
service = tinker.ServiceClient(base_url={server.url!r}, api_key={KEY!r})
tc = service.create_lora_training_client({BASE!r}, rank=0, seed=0).result()
sampler = service.create_sampling_client(base_model={BASE!r}).result()
for tok in (tc.get_tokenizer(), sampler.get_tokenizer()):
    print(tok.encode("12 + 30 = 42"), tok.decode(tok.encode("12 + 30 = 42")))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TINKER_TELEMETRY": "0"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from tinkerx.models.tiny import TinyModel

    expected = TinyModel().load_tokenizer().encode("12 + 30 = 42")
    assert proc.stdout.splitlines() == [f"{expected} 12 + 30 = 42"] * 2


def test_rest_client_lists_gets_and_deletes_checkpoints(server):
    service = tinker.ServiceClient(base_url=server.url, api_key=KEY)
    rest = service.create_rest_client()
    tc = service.create_lora_training_client(BASE, rank=4, seed=0).result()
    state = tc.save_state("step-1").result().path
    sampler_path = tc.save_weights_for_sampler("for-eval").result().path
    run_id = tc.model_id

    run = rest.get_training_run(run_id).result()
    assert (run.training_run_id, run.base_model, run.is_lora, run.lora_rank) == (run_id, BASE, True, 4)
    assert run.last_checkpoint.tinker_path == state and run.last_sampler_checkpoint.tinker_path == sampler_path
    assert run_id in [r.training_run_id for r in rest.list_training_runs(limit=100).result().training_runs]
    listed = rest.list_checkpoints(run_id).result().checkpoints
    assert sorted(c.tinker_path for c in listed) == sorted([state, sampler_path])
    assert all(c.size_bytes and c.size_bytes > 0 for c in listed)
    assert state in [c.tinker_path for c in rest.list_user_checkpoints(limit=100).result().checkpoints]
    info = rest.get_weights_info_by_tinker_path(state).result()
    assert (info.base_model, info.lora_rank) == (BASE, 4)

    sampler = service.create_sampling_client(model_path=sampler_path).result()
    got = rest.get_sampler(sampler._sampling_session_id).result()
    assert (got.base_model, got.model_path) == (BASE, sampler_path)
    session_id = run_id.split(":")[0]
    assert session_id in rest.list_sessions().result().sessions
    assert run_id in rest.get_session(session_id).result().training_run_ids

    rest.delete_checkpoint_from_tinker_path(state).result()
    assert [c.tinker_path for c in rest.list_checkpoints(run_id).result().checkpoints] == [sampler_path]
    with pytest.raises(tinker.NotFoundError, match="unknown checkpoint"):
        service.create_training_client_from_state(state).result()


def test_calls_that_are_not_served_answer_a_404_naming_the_call(server):
    # Not 501: the SDK retries every 5xx for five minutes.
    raw = RawClient(server.url, KEY)
    response = raw.post("training_runs/x/checkpoints/weights/y/publish", {})
    assert response.status_code == 404
    assert "POST /api/v1/training_runs/x/checkpoints/weights/y/publish" in response.json()["detail"]
    service = tinker.ServiceClient(base_url=server.url, api_key=KEY)
    with pytest.raises(tinker.NotFoundError, match="does not implement"):
        service.create_rest_client().publish_checkpoint_from_tinker_path("tinker://x:train:0/weights/y").result()
    # A numbered training call that is not served uses up its seq_id: the next call still runs.
    tc = service.create_lora_training_client(BASE, rank=0, seed=0).result()
    with pytest.raises(tinker.NotFoundError, match="save_weights_external"):
        tc.save_weights_external("x").result()
    datum = tinker.Datum(model_input=tinker.ModelInput.from_ints([5, 6]), loss_fn_inputs={"target_tokens": [6, 7], "weights": [1.0, 1.0]})
    assert tc.forward([datum], "cross_entropy").result(timeout=60).metrics["loss:sum"] > 0

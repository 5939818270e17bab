"""``tinkerx.serve`` facing mistakes and hostile input: every bad request gets a one-line 4xx, a
rejected request never blocks the client's later ones, nothing is written outside the state
folder, and API keys are checked on every route."""

from __future__ import annotations

import concurrent.futures
import os
import threading

import pytest
import tinker
from tinker import types

from tests.server_client import BASE, KEY, RawClient, sdk_env  # noqa: F401  (sdk_env: autouse)
from tinkerx.errors import ConfigError
from tinkerx.serve.context import ServerConfig
from tinkerx.serve.runner import local_server



@pytest.fixture(scope="module")
def tiny():
    from tinkerx.models.tiny import TinyModel

    return TinyModel()


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory):
    config = ServerConfig(poll_hold_s=2, max_tokens=64, max_num_samples=16, max_request_bytes=1 << 20)
    with local_server(tiny, tmp_path_factory.mktemp("server"), config) as server:
        yield server


@pytest.fixture(scope="module")
def sdk(server):
    return tinker.ServiceClient(base_url=server.url, api_key=KEY)


def _datums() -> list[tinker.Datum]:
    return [tinker.Datum(model_input=tinker.ModelInput.from_ints([5, 17, 33]), loss_fn_inputs={"target_tokens": [17, 33, 48], "weights": [1.0] * 3})]


def _within(seconds: float, fn):
    """fn's result, or a test failure (not a hung test run) when it takes longer."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()  # a daemon: a blocked call cannot hang the test run
    try:
        return future.result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"no answer within {seconds} s: the client is blocked")


def _one_line_4xx(response, status: int, *words: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert "\n" not in detail and "Traceback" not in detail, detail
    for word in words:
        assert word in detail, detail


def test_rejected_training_requests_do_not_block_the_client(sdk):
    tc = sdk.create_lora_training_client(BASE, rank=0, seed=0).result()
    with pytest.raises(tinker.BadRequestError, match="learning_rate"):
        tc.optim_step(types.AdamParams(learning_rate=float("nan"))).result()
    with pytest.raises(tinker.NotFoundError, match="unknown checkpoint"):
        tc.load_state("tinker://nobody:train:0/weights/missing").result()
    out = _within(60, lambda: tc.forward(_datums(), "cross_entropy").result())
    assert out.metrics["loss:sum"] > 0


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "nested", "hidden", "empty"])
def test_checkpoint_names_cannot_leave_the_state_folder(sdk, tmp_path, kind):
    target = tmp_path / "escaped"
    name = {
        "absolute": str(target), "dotdot": "../" * 12 + str(target).lstrip("/"), "nested": "a/b", "hidden": ".hidden", "empty": "",
    }[kind]  # fmt: skip
    tc = sdk.create_lora_training_client(BASE, rank=0, seed=0).result()
    for save in (tc.save_state, tc.save_weights_for_sampler):
        with pytest.raises(tinker.BadRequestError, match="checkpoint name"):
            _within(30, lambda: save(name).result())
    assert not target.exists()
    assert _within(60, lambda: tc.forward(_datums(), "cross_entropy").result())  # and nothing got stuck


def test_checkpoints_that_point_outside_the_state_folder_do_not_load(sdk, server, tmp_path):
    tc = sdk.create_lora_training_client(BASE, rank=0, seed=0).result()
    path = tc.save_state("good").result().path
    registry = server.context.registry
    outside = tmp_path / "elsewhere"
    local = registry.checkpoints[path]["local_path"]
    os.rename(local, outside)
    os.symlink(outside, local)  # a symlink out of the state folder
    with pytest.raises(tinker.BadRequestError, match="outside"):
        sdk.create_training_client_from_state(path).result()


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"max_tokens": 100000}, 400, ["max_tokens", "64"]),
        ({"num_samples": 2000}, 400, ["num_samples", "16"]),
        ({"temperature": -1.0}, 400, ["temperature"]),
        ({"top_p": 0.0}, 400, ["top_p"]),
        ({"tokens": []}, 400, ["empty"]),
        ({"tokens": [5, 10**6]}, 400, ["token id", "vocabulary"]),
        ({"tokens": [5] * 600}, 400, ["context"]),
    ],
)
def test_bad_sample_requests_get_a_one_line_400(server, change, status, words):
    raw = RawClient(server.url, KEY)
    sampler = raw.sampler(raw.session())
    params = {k: v for k, v in change.items() if k in ("temperature", "top_p")}
    body = raw.sample_body(
        sampler, 0, change.get("tokens", [5, 6]), max_tokens=change.get("max_tokens", 4), num_samples=change.get("num_samples", 1), **params
    )
    _one_line_4xx(raw.post("asample", body), status, *words)
    # The rejected seq_id does not hold up the next one.
    response = raw.post("asample", raw.sample_body(sampler, 1, [5, 6]))
    assert response.status_code == 200
    assert _within(30, lambda: raw.result(response.json()["request_id"])).status_code == 200


def test_malformed_bodies_get_a_4xx_and_the_server_survives(server):
    raw = RawClient(server.url, KEY)
    _one_line_4xx(raw.post("retrieve_future", [1, 2]), 400, "JSON object")
    _one_line_4xx(raw.post("session_heartbeat", "x"), 400, "JSON object")
    _one_line_4xx(raw.post("create_session", content=b"{not json"), 400, "JSON")
    _one_line_4xx(raw.post("forward_backward", content=b"\x28\xb5\x2f\xfdgarbage", **{"content-encoding": "zstd"}), 400, "zstd")
    _one_line_4xx(raw.post("asample", content=b"x" * (2 << 20)), 413, "bytes")
    session = raw.session()
    body = {"session_id": session, "model_seq_id": 0, "base_model": BASE, "lora_config": {"rank": -3}, "type": "create_model"}
    _one_line_4xx(raw.post("create_model", body), 400, "rank")
    assert raw.http.get("/api/v1/healthz").status_code == 200


def test_a_resent_seq_id_with_a_different_body_is_a_conflict(server):
    raw = RawClient(server.url, KEY)
    sampler = raw.sampler(raw.session())
    first = raw.post("asample", raw.sample_body(sampler, 0, [5, 6]))
    again = raw.post("asample", raw.sample_body(sampler, 0, [5, 6]))
    assert first.status_code == again.status_code == 200 and first.json() == again.json()  # a retry
    _one_line_4xx(raw.post("asample", raw.sample_body(sampler, 0, [7, 8])), 409, "seq_id 0")


def test_api_keys_are_checked_on_every_route(tiny, tmp_path):
    config = ServerConfig(api_keys=[KEY])
    with local_server(tiny, tmp_path, config) as server:
        for key in (None, "wrong-key"):
            raw = RawClient(server.url, key)
            assert raw.http.get("/tinkerx/stats").status_code == 401
            assert raw.post("create_session", {}).status_code == 401
            assert raw.http.get("/api/v1/healthz").status_code == 401
        raw = RawClient(server.url, KEY)
        assert raw.http.get("/tinkerx/stats").status_code == 200
        tc = tinker.ServiceClient(base_url=server.url, api_key=KEY).create_lora_training_client(BASE, rank=0).result()
        assert tc.forward(_datums(), "cross_entropy").result().metrics["loss:sum"] > 0


def test_binding_beyond_loopback_needs_an_api_key(monkeypatch):
    from tinkerx.serve.security import api_keys_for

    monkeypatch.delenv("TINKERX_SERVE_API_KEYS", raising=False)
    assert api_keys_for("127.0.0.1", []) == []
    assert api_keys_for("localhost", []) == []
    with pytest.raises(ConfigError, match="server.api_keys"):
        api_keys_for("0.0.0.0", [])
    assert api_keys_for("0.0.0.0", ["k1"]) == ["k1"]
    monkeypatch.setenv("TINKERX_SERVE_API_KEYS", "k2, k3")
    assert api_keys_for("0.0.0.0", []) == ["k2", "k3"]


def test_the_cli_refuses_to_expose_the_server_without_a_key(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "TINKERX_SERVE_API_KEYS": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "tinkerx.serve", "model=tiny", "server.host=0.0.0.0", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "api_keys" in proc.stderr and "Traceback" not in proc.stderr


def test_a_datum_longer_than_the_context_is_a_400_naming_its_length_and_the_limit(sdk):
    tc = sdk.create_lora_training_client(BASE, rank=0, seed=0).result()
    long = tinker.Datum(model_input=tinker.ModelInput.from_ints([5] * 600), loss_fn_inputs={"target_tokens": [5] * 600, "weights": [1.0] * 600})
    for call in (tc.forward_backward, tc.forward):
        with pytest.raises(tinker.BadRequestError, match="600 tokens, longer than the model's context of 512"):
            _within(30, lambda: call([*_datums(), long], "cross_entropy").result())
    assert _within(60, lambda: tc.forward_backward(_datums(), "cross_entropy").result()).metrics["loss:sum"] > 0


def test_the_server_gives_training_clients_its_token_budget(tiny, tmp_path):
    with local_server(tiny, tmp_path, ServerConfig(max_tokens_per_forward=96)) as server:
        client = server.context.service.create_lora_training_client(BASE, rank=0).result()
        assert client.engine.token_budget == 96
    with local_server(tiny, tmp_path / "auto", ServerConfig()) as server:
        client = server.context.service.create_lora_training_client(BASE, rank=0).result()
        budget = client.engine.token_budget
        assert client.engine.budget_is_auto and budget >= 1 and budget & (budget - 1) == 0  # derived: a power of two

"""``backend=tinker`` pieces that need no server: the API key, the SDK transport swap, cassette matching."""

from __future__ import annotations

import json

import pytest

from tinkerx.backends.tinker_backend import TinkerBackend, resolve_api_key
from tinkerx.errors import UserError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("TINKER_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


def test_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("TINKER_API_KEY", " tml-abc123 ")
    assert resolve_api_key("TINKER_API_KEY") == "tml-abc123"


def test_key_from_a_dotenv_file_above_the_working_directory(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("TINKER_API_KEY=tml-from-dotenv\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert resolve_api_key("TINKER_API_KEY") == "tml-from-dotenv"
    import os

    assert "TINKER_API_KEY" not in os.environ  # read, never exported to child processes


def test_a_jwt_is_accepted(monkeypatch):
    monkeypatch.setenv("MY_KEY", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    assert resolve_api_key("MY_KEY").startswith("eyJ")


def test_missing_key_is_one_line_before_any_work(tmp_path):
    backend = TinkerBackend(base_url="http://127.0.0.1:9")
    with pytest.raises(UserError, match="needs an API key: set TINKER_API_KEY") as err:
        backend.open([], tmp_path / "run")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()  # nothing was started or written


def test_malformed_key_is_rejected_without_echoing_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TINKER_API_KEY", "sk-not-a-tinker-key-98765")
    with pytest.raises(UserError, match="malformed") as err:
        TinkerBackend().open([], tmp_path / "run")
    assert "98765" not in str(err.value)


def test_bad_base_url_is_a_config_error():
    with pytest.raises(UserError, match="base_url"):
        TinkerBackend(base_url="127.0.0.1:8000")


def test_missing_replay_file(tmp_path):
    with pytest.raises(UserError, match="no recorded traffic"):
        TinkerBackend(replay=str(tmp_path / "nope.yaml")).open([], tmp_path / "run")


def test_open_swaps_the_sdk_transport_and_close_restores_it(monkeypatch, tmp_path):
    import httpx
    import tinker._base_client as base

    monkeypatch.setenv("TINKER_API_KEY", "tml-x")
    monkeypatch.setenv("TINKER_TELEMETRY", "1")
    monkeypatch.setattr("tinkerx.backends.tinker_backend.check_reachable", lambda *args: None)  # no server here
    before = (base._default_pyqwest_transport, base.AsyncHttpxClientWrapper)
    backend = TinkerBackend(base_url="http://127.0.0.1:9", record=False)
    backend.open([], tmp_path)
    assert isinstance(base._default_pyqwest_transport(), httpx.AsyncHTTPTransport)  # vcrpy patches this class
    client = base.AsyncHttpxClientWrapper(base_url="http://x")
    assert isinstance(client._transport, httpx.AsyncHTTPTransport)
    import os

    assert os.environ["TINKER_TELEMETRY"] == "0"
    backend.close()
    assert (base._default_pyqwest_transport, base.AsyncHttpxClientWrapper) == before
    assert os.environ["TINKER_TELEMETRY"] == "1"


class _Req:
    def __init__(self, path, body, headers=None, method="POST"):
        from vcr.request import Request

        self.r = Request(method, f"http://h:1{path}", body, headers or {})


def test_matching_ignores_key_order_host_and_compression():
    import zstandard
    from tinker import types
    from tinker.proto.request_conv import forward_backward_request_to_proto

    from tinkerx.backends.tinker_traffic import _key

    a = _Req("/api/v1/optim_step", json.dumps({"a": 1, "b": [1, 2]})).r
    b = _Req("/services/x/api/v1/optim_step", json.dumps({"b": [1, 2], "a": 1})).r
    assert _key(a) == _key(b)
    datum = types.Datum(model_input=types.ModelInput.from_ints([1, 2]), loss_fn_inputs={"target_tokens": [2, 3], "weights": [1.0, 1.0]})
    request = types.ForwardBackwardRequest(
        forward_backward_input=types.ForwardBackwardInput(data=[datum], loss_fn="cross_entropy"), model_id="m", seq_id=1
    )
    raw = forward_backward_request_to_proto(request).SerializeToString()
    plain = _Req("/api/v1/forward_backward", raw, {"content-type": "application/x-protobuf"}).r
    packed = _Req("/api/v1/forward_backward", zstandard.ZstdCompressor().compress(raw), {"content-encoding": "zstd"}).r
    assert _key(plain) == _key(packed)


def test_cassette_replays_in_order_repeats_liveness_and_names_misses(tmp_path):
    from vcr.request import Request

    from tinkerx.backends.tinker_traffic import TinkerCassette

    def response(body):
        return {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": json.dumps(body).encode()}}

    poll = Request("POST", "http://h/api/v1/retrieve_future", b'{"request_id": "r1"}', {})
    beat = Request("POST", "http://h/api/v1/session_heartbeat", b'{"session_id": "s"}', {})
    hub = Request("GET", "https://huggingface.co/api/models/x", b"", {})
    cassette = TinkerCassette(str(tmp_path / "c.yaml"), record_mode="none", server="http://h/")
    cassette.append(poll, response({"type": "try_again"}))
    cassette.append(poll, response({"metrics": {}}))
    cassette.rewound = True  # as after loading from a file

    assert cassette.can_play_response_for(poll)
    assert not cassette.can_play_response_for(hub)  # other servers' traffic is not ours to answer
    assert json.loads(cassette.play_response(poll)["body"]["string"]) == {"type": "try_again"}
    assert json.loads(cassette.play_response(poll)["body"]["string"]) == {"metrics": {}}
    for _ in range(3):  # never recorded, yet answered: heartbeats depend on wall time, not on the run
        assert cassette.play_response(beat)["status"]["code"] == 200
    missed = cassette.play_response(poll)  # all of its answers were used
    assert missed["status"]["code"] == 404 and b"tinkerx replay" in missed["body"]["string"]
    assert cassette.misses == ["POST /api/v1/retrieve_future"]


def test_a_recording_is_written_while_the_run_goes_not_only_at_the_end(tmp_path):
    # A run killed with SIGKILL never closes its cassette: what was flushed is all that survives.
    import time

    import yaml
    from vcr.request import Request

    from tinkerx.backends.tinker_traffic import use_cassette

    path = tmp_path / "http_traffic.yaml"
    manager = use_cassette(path, replay=False, secret=None, server="http://h/")
    cassette = manager.__enter__()
    try:
        cassette.start_flushing(0.05)
        ok = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": b'{"type": "try_again"}'}}
        cassette.append(Request("POST", "http://h/api/v1/retrieve_future", b'{"request_id": "r1"}', {}), ok)
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.exists(), "nothing was written before the cassette closed"
        time.sleep(0.2)  # later flushes find nothing new, and never leave a partial file behind
        recorded = yaml.safe_load(path.read_text())["interactions"]
        assert [i["request"]["uri"] for i in recorded] == ["http://h/api/v1/retrieve_future"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["http_traffic.yaml"]
    finally:
        cassette.stop_flushing()
        manager.__exit__(None, None, None)


def test_recording_keeps_only_tinker_traffic_and_scrubs_the_key():
    from vcr.request import Request

    from tinkerx.backends.tinker_traffic import _scrubber

    request_hook, response_hook = _scrubber("tml-k3y", "http://h:1/")
    hub = Request("GET", "https://huggingface.co/api/models/x/tree/main", b"", {})
    assert request_hook(hub) is None  # goes to the network as usual, never into the file
    ours = Request("POST", "http://h:1/api/v1/asample", b'{"echo": "tml-k3y"}', {"X-API-Key": "tml-k3y", "x-stainless-os": "Linux"})
    ours = request_hook(ours)
    assert ours.headers["X-API-Key"] == "<redacted>" and "x-stainless-os" not in ours.headers
    assert b"tml-k3y" not in ours.body
    response = response_hook({"status": {"code": 200}, "headers": {"set-cookie": ["a=tml-k3y"]}, "body": {"string": b"tml-k3y!"}})
    assert response["headers"]["set-cookie"] == ["<redacted>"] and response["body"]["string"] == b"<redacted>!"


def test_unreachable_server_fails_fast_naming_the_url(monkeypatch, tmp_path):
    import socket
    import time

    monkeypatch.setenv("TINKER_API_KEY", "tml-x")
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(UserError, match=f"cannot reach the Tinker server at {url}.*backend.base_url"):
        TinkerBackend(base_url=url, connect_timeout_s=5).open([], tmp_path)
    assert time.monotonic() - started < 30


def test_a_server_that_is_not_tinker_is_named(monkeypatch, tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TINKER_API_KEY", "tml-x")
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(UserError, match=f"{url} answers, but not as a Tinker server"):
            TinkerBackend(base_url=url, connect_timeout_s=5).open([], tmp_path)
    finally:
        server.shutdown()

"""``tinkerx.serve`` under several clients: concurrent samples share decode batches, one client's
long job cannot starve another's short one, and a vanished client's work is cancelled."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import tinker
from tinker import types

from tests.server_client import BASE, KEY, RawClient, sdk_env  # noqa: F401  (sdk_env: autouse)
from tinkerx.serve.context import ServerConfig
from tinkerx.serve.runner import local_server



@pytest.fixture(scope="module")
def tiny():
    from tinkerx.models.tiny import TinyModel

    # A longer context than the default so a job can run long enough to be in the way.
    return TinyModel(max_position_embeddings=2048)


def test_concurrent_sample_requests_share_decode_batches(tiny, tmp_path):
    with local_server(tiny, tmp_path, ServerConfig(poll_hold_s=5)) as server:
        service = tinker.ServiceClient(base_url=server.url, api_key=KEY)
        sampler = service.create_sampling_client(base_model=BASE)
        params = types.SamplingParams(max_tokens=8, temperature=1.0)
        sampler.sample(types.ModelInput.from_ints([5, 6]), 1, params).result()  # warm up
        before = httpx.get(f"{server.url}/tinkerx/stats").json()["sampling"]
        futures = [sampler.sample(types.ModelInput.from_ints([5, 6, i]), 1, params) for i in range(16)]
        assert all(len(f.result().sequences) == 1 for f in futures)
        after = httpx.get(f"{server.url}/tinkerx/stats").json()["sampling"]
    batches = after["batches"] - before["batches"]
    rows = after["rows"] - before["rows"]
    assert rows >= 16 and batches < 16, (batches, rows)  # 16 requests did not take 16 separate decodes
    assert after["max_batch_rows"] > 1


def test_a_short_request_is_not_starved_by_another_clients_long_job(tiny, tmp_path):
    config = ServerConfig(poll_hold_s=2, max_tokens=4096, sample_chunk_tokens=16)
    with local_server(tiny, tmp_path, config) as server:
        hog, short = RawClient(server.url, KEY), RawClient(server.url, KEY)
        hog_sampler = hog.sampler(hog.session())
        short_sampler = short.sampler(short.session())
        short.result(short.ok("asample", short.sample_body(short_sampler, 0, [5, 6], max_tokens=16))["request_id"])  # warm up
        start = time.monotonic()
        alone = short.result(short.ok("asample", short.sample_body(short_sampler, 1, [5, 6], max_tokens=16))["request_id"])
        alone_s = time.monotonic() - start
        assert alone.status_code == 200

        long_id = hog.ok("asample", hog.sample_body(hog_sampler, 0, [9, 9, 9], max_tokens=1500, num_samples=4, temperature=0.0, stop=[]))["request_id"]
        time.sleep(0.5)  # the long job is decoding
        start = time.monotonic()
        reply = short.result(short.ok("asample", short.sample_body(short_sampler, 2, [5, 6], max_tokens=16))["request_id"])
        during_s = time.monotonic() - start
        assert reply.status_code == 200
        stats = httpx.get(f"{server.url}/tinkerx/stats").json()["sampling"]
        assert stats["queued"] + stats["running"] >= 1, "the long job finished before the short one was timed"
        hog.post("sessions/{}/finish".format(hog_sampler.split(":")[0]))
        assert hog.result(long_id).json()["category"] == "user"
    # Generous: the short request waits for at most a chunk of the long one, not all of it.
    assert during_s < max(10 * alone_s, 5.0), (during_s, alone_s)


def test_work_of_a_client_that_stopped_sending_heartbeats_is_cancelled(tiny, tmp_path):
    config = ServerConfig(poll_hold_s=1, max_tokens=4096, sample_chunk_tokens=16, session_timeout_s=1.0)
    with local_server(tiny, tmp_path, config) as server:
        raw = RawClient(server.url, KEY)
        sampler = raw.sampler(raw.session())  # and then no heartbeat: the client "died"
        request_id = raw.ok("asample", raw.sample_body(sampler, 0, [9, 9], max_tokens=1500, num_samples=8, temperature=0.0, stop=[]))["request_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stats = httpx.get(f"{server.url}/tinkerx/stats").json()["sampling"]
            if stats["cancelled"]:
                break
            time.sleep(0.2)
        assert stats["cancelled"] == 1 and stats["queued"] == stats["running"] == 0, stats
        error = raw.result(request_id).json()
        assert "cancelled" in error["error"] and "heartbeat" in error["error"]


def test_heartbeats_keep_a_quiet_client_alive(tiny, tmp_path):
    with local_server(tiny, tmp_path, ServerConfig(poll_hold_s=1, session_timeout_s=1.0)) as server:
        raw = RawClient(server.url, KEY)
        session = raw.session()
        sampler = raw.sampler(session)
        stop = threading.Event()

        def beat():
            while not stop.wait(0.3):
                raw.post("session_heartbeat", {"session_id": session, "type": "session_heartbeat"})

        thread = threading.Thread(target=beat)
        thread.start()
        try:
            time.sleep(2.0)
            response = raw.post("asample", raw.sample_body(sampler, 0, [5, 6]))
            assert response.status_code == 200
            assert raw.result(response.json()["request_id"]).status_code == 200
        finally:
            stop.set()
            thread.join()

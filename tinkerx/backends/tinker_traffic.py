"""Recording and replaying a run's Tinker traffic with vcrpy (``http_traffic.yaml`` in the run folder).

Replaying must hand every request the answer it got when recorded, although ids, timing and
background traffic differ between runs. What makes that work:

- Requests match on method, API path (what follows ``/api/``, so a replay needs no ``base_url``)
  and *canonical* body: JSON re-serialised with sorted keys, and
  ``forward_backward`` protobuf decompressed and re-serialised deterministically (protobuf map
  order is not fixed). Hosts, ports and headers (idempotency keys, retry counters) are ignored.
- Identical requests (a future polled until ready, a retry after a 429) get their recorded answers
  in recorded order; everything the client sends after an answer depends only on that answer.
- Server-issued ids (sessions, models, request ids) come from the recorded answers, so the client
  sends the same ids back; the SDK's own counters (seq_ids) are deterministic.
- Liveness traffic (heartbeats every 10 s, config refreshes) depends on wall time, not on the run:
  it replays its last recorded answer however often it comes, or a canned one if none was recorded.
  Telemetry is switched off (``TINKER_TELEMETRY=0``), so its batches never enter the cassette.

Only requests to the Tinker server are recorded and replayed; anything else the process sends
while the cassette is open (a tokenizer download from the Hugging Face Hub, say) goes to the
network as usual. Secrets never reach the file: auth headers are replaced, and the key itself is
scrubbed from every header and body on the way in.

A recording is written while the run goes, every ``flush_every_s`` seconds (vcrpy alone writes it only
when the cassette closes, so a killed run would lose all of it), each time to a temporary file that
then replaces the old one: a kill mid-write leaves the previous complete file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import vcr
from vcr.cassette import Cassette
from vcr.persisters.filesystem import FilesystemPersister
from vcr.serialize import serialize

from tinkerx.wire import canonical_forward_backward, decompress

REDACTED = "<redacted>"
SECRET_HEADERS = ("x-api-key", "authorization", "cf-access-client-id", "cf-access-client-secret", "cookie", "set-cookie")
LIVENESS = {
    "/api/v1/session_heartbeat": {"type": "session_heartbeat"},
    "/api/v1/client/dynamic_config": {"refresh_interval_sec": 3600},
    "/api/v1/telemetry": {"status": "accepted"},
}


def _liveness_path(request: Any) -> str | None:
    return next((p for p in LIVENESS if request.path.endswith(p)), None)


def canonical_body(request: Any) -> bytes:
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    if request.path.endswith(("/forward_backward", "/forward")):
        return canonical_forward_backward(decompress(body, request.headers.get("content-encoding")))
    try:
        return json.dumps(json.loads(body or b"null"), sort_keys=True).encode()
    except ValueError:
        return body


def tinker_body(r1: Any, r2: Any) -> None:
    assert canonical_body(r1) == canonical_body(r2), "bodies differ"


def _api_path(request: Any) -> str:
    path = request.path
    return path[path.find("/api/") :] if "/api/" in path else path


def tinker_path(r1: Any, r2: Any) -> None:
    assert _api_path(r1) == _api_path(r2), "API paths differ"


def _json_response(code: int, message: str, body: Any) -> dict:
    return {"status": {"code": code, "message": message}, "headers": {"content-type": ["application/json"]}, "body": {"string": json.dumps(body).encode()}}


def _key(request: Any) -> tuple[str, str, bytes]:
    return request.method, _api_path(request), canonical_body(request)


class TinkerCassette(Cassette):
    """A vcrpy cassette for Tinker traffic.

    - Lookups go through an index on (method, API path, canonical body): vcrpy's own lookup
      compares a request with every recorded one, which turns a run of thousands of requests
      quadratic, on the SDK's one event-loop thread.
    - Liveness traffic replays however often it comes (see the module docstring).
    - A request never seen gets a 404 naming it: vcrpy's own error reaches the SDK as a connection
      error, which it retries for five minutes before giving up.
    """

    def _plays(self) -> dict[tuple, list[int]]:
        if "_index" not in self.__dict__:
            self._index: dict[tuple, list[int]] = {}
            self.misses: list[str] = []
            for i, (request, _) in enumerate(self.data):
                self._index.setdefault(_key(request), []).append(i)
        return self._index

    def __init__(self, *args: Any, server: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server = server  # the SDK's base URL: requests elsewhere are not ours to answer
        self._save_lock = threading.Lock()  # the flusher thread and the final save never interleave
        self._stop_flushing = threading.Event()

    def _save(self, force: bool = False) -> None:
        with self._save_lock:
            super()._save(force=force)

    def start_flushing(self, every_s: float) -> None:
        """Write what was recorded so far every ``every_s`` seconds, on a daemon thread, until closed."""

        def flush() -> None:
            while not self._stop_flushing.wait(every_s):
                if self.dirty:
                    self._save()

        threading.Thread(target=flush, name="tinkerx-traffic-flush", daemon=True).start()

    def stop_flushing(self) -> None:
        self._stop_flushing.set()

    def can_play_response_for(self, request: Any) -> bool:
        # Recording (record_mode "all") never plays back: skip the lookup altogether.
        return self.write_protected and self.rewound and request.uri.startswith(self.server)

    def play_response(self, request: Any) -> dict:
        request = self._before_record_request(request)
        indices = self._plays().get(_key(request), [])
        for i in indices:
            if self.play_counts[i] == 0:
                self.play_counts[i] += 1
                return self.data[i][1]
        path = _liveness_path(request)
        if path is not None:
            return self.data[indices[-1]][1] if indices else _json_response(200, "OK", LIVENESS[path])
        miss = f"{request.method} {_api_path(request)}"
        self.misses.append(miss)
        return _json_response(404, "Not Found", {"detail": f"tinkerx replay: {self._path} has no answer for {miss} with this body"})


class AtomicPersister(FilesystemPersister):
    """vcrpy's file persister, but a write goes to a temporary file renamed over the old one."""

    @staticmethod
    def save_cassette(cassette_path: Any, cassette_dict: dict, serializer: Any) -> None:
        path = Path(cassette_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(serialize(cassette_dict, serializer))
        os.replace(partial, path)


def _scrubber(secret: str | None, server: str | None):
    """Hooks that remove ``secret`` from headers and bodies, and keep only requests to ``server``
    (when recording: a replayed file holds the recorded run's server, whatever it was)."""
    needle = secret.encode() if secret else None

    def scrub_bytes(value: Any) -> Any:
        if needle is None:
            return value
        if isinstance(value, bytes):
            return value.replace(needle, REDACTED.encode())
        if isinstance(value, str):
            return value.replace(secret, REDACTED)
        return value

    def request_hook(request: Any) -> Any:
        if server is not None and not request.uri.startswith(server):
            return None
        for name in [n for n in request.headers if n.lower().startswith("x-stainless-")]:
            del request.headers[name]  # the SDK's platform banner on every request: noise in the file
        for name in SECRET_HEADERS:
            if name in request.headers:
                request.headers[name] = REDACTED
        for name, value in list(request.headers.items()):
            request.headers[name] = scrub_bytes(value)
        request.body = scrub_bytes(request.body)
        return request

    def response_hook(response: dict) -> dict:
        headers = response.get("headers", {})
        for name in list(headers):
            values = headers[name]
            headers[name] = [REDACTED] if name.lower() in SECRET_HEADERS else [scrub_bytes(v) for v in values]
        response["body"]["string"] = scrub_bytes(response["body"]["string"])
        return response

    return request_hook, response_hook


def use_cassette(path: Path, *, replay: bool, secret: str | None, server: str):
    """A context manager that records to (or, with ``replay``, plays back from) ``path`` the traffic
    to ``server`` (the SDK's base URL)."""
    server = server.rstrip("/") + "/"
    request_hook, response_hook = _scrubber(secret, None if replay else server)
    recorder = vcr.VCR(
        record_mode="none" if replay else "all",
        decode_compressed_response=True,  # gzip'd JSON answers stay readable in the file
    )
    recorder.register_persister(AtomicPersister)
    recorder.register_matcher("tinker_path", tinker_path)
    recorder.register_matcher("tinker_body", tinker_body)
    config = recorder.get_merged_config(
        path=str(path),
        match_on=("method", "tinker_path", "tinker_body"),
        before_record_request=request_hook,
        before_record_response=response_hook,
    )
    return TinkerCassette.use(**config, server=server)

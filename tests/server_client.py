"""A raw HTTP client for ``tinkerx.serve``: sends what the SDK never would (bad bodies, replays)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

BASE = "tinkerx/tiny"


class RawClient:
    def __init__(self, url: str, key: str | None = None, timeout: float = 30.0) -> None:
        headers = {"X-API-Key": key} if key else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def post(self, route: str, body: Any = None, content: bytes | None = None, **headers: str) -> httpx.Response:
        data = content if content is not None else json.dumps(body if body is not None else {}).encode()
        return self.http.post(f"/api/v1/{route}", content=data, headers=headers)

    def ok(self, route: str, body: Any) -> dict:
        response = self.post(route, body)
        assert response.status_code == 200, response.text
        return response.json()

    def session(self) -> str:
        return self.ok("create_session", {"tags": [], "sdk_version": "raw", "type": "create_session"})["session_id"]

    def sampler(self, session_id: str, seq: int = 0) -> str:
        body = {"session_id": session_id, "sampling_session_seq_id": seq, "base_model": BASE, "type": "create_sampling_session"}
        return self.ok("create_sampling_session", body)["sampling_session_id"]

    def sample_body(self, sampler_id: str, seq_id: int, tokens: list[int], max_tokens: int = 4, num_samples: int = 1, **params: Any) -> dict:
        return {
            "sampling_session_id": sampler_id,
            "seq_id": seq_id,
            "prompt": {"chunks": [{"type": "encoded_text", "tokens": tokens}]},
            "num_samples": num_samples,
            "sampling_params": {"max_tokens": max_tokens, **params},
            "type": "sample",
        }

    def result(self, request_id: str) -> httpx.Response:
        """Poll until the operation is done; the final reply (protobuf or JSON error)."""
        while True:
            response = self.post("retrieve_future", {"request_id": request_id})
            if response.headers.get("content-type", "").startswith("application/json"):
                body = response.json()
                if isinstance(body, dict) and body.get("type") == "try_again":
                    continue
            return response

    def model(self, session_id: str, seq: int = 0, rank: int = 0) -> str:
        body = {"session_id": session_id, "model_seq_id": seq, "base_model": BASE, "lora_config": {"rank": rank, "seed": 0}, "type": "create_model"}
        response = self.ok("create_model", body)
        assert self.result(response["request_id"]).status_code == 200
        return response["model_id"]


KEY = "tml-test-secret-0123456789"


@pytest.fixture(autouse=True)
def sdk_env(monkeypatch):
    """The SDK, in tests: no telemetry, and a key the server accepts."""
    monkeypatch.setenv("TINKER_TELEMETRY", "0")
    monkeypatch.setenv("TINKER_API_KEY", KEY)

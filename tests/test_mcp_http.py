"""``python -m tinkerx.mcp --http PORT``: streamable HTTP on 127.0.0.1, same tools, same session."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.helpers.mcp import SERVER_ENV
from tinkerx.serve.runner import free_port

pytestmark = pytest.mark.slow


def test_streamable_http_serves_the_tools_on_localhost(tmp_path):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    port = free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tinkerx.mcp", "--http", str(port), "--session-dir", str(tmp_path / "session")],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **SERVER_ENV},
    )  # fmt: skip

    async def agent() -> dict:
        deadline = time.monotonic() + 60
        while True:
            try:
                async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write):
                    async with ClientSession(read, write) as client:
                        await client.initialize()
                        tools = {t.name for t in (await client.list_tools()).tools}
                        status = await client.call_tool("status", {})
                        missing = await client.call_tool("train_sft_step", {"steps": 1})
                        return {"tools": tools, "status": status.structured_content, "missing": missing}
            except Exception:  # noqa: BLE001 - not listening yet
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    try:
        seen = asyncio.run(agent())
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert {"start_run", "train_step", "init_sft", "init_grpo", "train_grpo_step", "status", "wait", "cancel"} <= seen["tools"]
    assert seen["status"]["method"] is None and seen["status"]["session_dir"] == str(tmp_path / "session")
    assert seen["missing"].is_error and "no run in progress" in seen["missing"].content[0].text
    assert (tmp_path / "session" / "tool_calls.jsonl").is_file()

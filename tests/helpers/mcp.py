"""An MCP client session against ``python -m tinkerx.mcp`` over stdio, and the data its tests train on."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

from tests.helpers.paths import ROOT

SERVER_ENV = {"OMP_NUM_THREADS": "1", "TINKER_TELEMETRY": "0", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TINKERX_DEBUG": "1"}


def write_addition(path: Path, n: int, seed: int, largest: int = 9, slips: float = 0.0) -> Path:
    """Sums of two digits up to ``largest``: learnable by the tiny model in tens of steps. Holdout
    files are drawn independently from the same distribution, so with few distinct sums most also
    occur in training (an i.i.d. split, not a test of generalisation). ``slips``: the share of sums
    past 9 answered without their tens (7+5=2), for benchmarks/measure_mcp_demo.py."""
    rng = random.Random(seed)
    with path.open("w") as f:
        for _ in range(n):
            a, b = rng.randint(0, largest), rng.randint(0, largest)
            # No draw without slips: the same sums as before the option existed.
            answer = (a + b) % 10 if slips and a + b > 9 and rng.random() < slips else a + b
            f.write(json.dumps({"question": f"{a}+{b}=", "answer": str(answer)}) + "\n")
    return path


def run_session(session_dir: Path, script: Callable[[Any], Awaitable[None]], *server_args: str, env: dict[str, str] | None = None) -> None:
    """Starts ``python -m tinkerx.mcp`` over stdio and runs ``script(client_session)`` against it."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tinkerx.mcp", "--session-dir", str(session_dir), *server_args],
        cwd=str(ROOT),
        env={**SERVER_ENV, "PYTHONPATH": str(ROOT), **(env or {})},
    )

    async def main() -> None:
        with (session_dir.parent / f"{session_dir.name}.stderr.log").open("w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as client:
                    await client.initialize()
                    await script(client)

    asyncio.run(main())


async def call(client: Any, tool: str, progress: list | None = None, **arguments: Any) -> dict[str, Any]:
    """A tool call that must succeed; returns its structured result."""
    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    result = await client.call_tool(tool, arguments, progress_callback=on_progress if progress is not None else None)
    assert not result.is_error, f"{tool}: {result.content[0].text}"
    return result.structured_content if result.structured_content is not None else json.loads(result.content[0].text)


async def call_error(client: Any, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {result.structured_content}"
    return result.content[0].text

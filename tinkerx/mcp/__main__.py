"""``python -m tinkerx.mcp [--http PORT] [--session-dir DIR] [backend=... model=... ...]``

Serves the training tools over stdio (for an agent that starts the server itself) or, with
``--http PORT``, over streamable HTTP on 127.0.0.1. Trailing ``key=value`` arguments are Hydra
overrides of the same config groups as the CLI (default: ``model=tiny backend=local``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tinkerx.cli_errors import report_user_error
from tinkerx.errors import UserError
from tinkerx.mcp.config import compose
from tinkerx.mcp.server import create_server
from tinkerx.mcp.session import TrainingSession


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tinkerx.mcp", description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT instead of stdio")
    parser.add_argument("--session-dir", type=Path, help="the session folder (default outputs/mcp/DATE/TIME)")
    parser.add_argument("--busy-timeout", type=float, default=10.0, metavar="S", help="how long a call waits for a running one before answering busy")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. backend=tinker model=qwen3-8b")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        compose(args.overrides)  # a typo in an override fails here, as one line, before serving
    except UserError as e:
        report_user_error(e)
    session_dir = args.session_dir or Path("outputs/mcp") / time.strftime("%Y-%m-%d/%H-%M-%S")
    session = TrainingSession(session_dir, args.overrides)
    print(f"tinkerx.mcp: session folder {session.dir}", file=sys.stderr)
    server = create_server(session, busy_timeout_s=args.busy_timeout)
    try:
        if args.http is not None:
            server.run("streamable-http", host="127.0.0.1", port=args.http)
        else:
            server.run("stdio")
    finally:
        session.close("server stopped")


if __name__ == "__main__":
    main()

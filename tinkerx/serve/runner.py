"""Start the server: in the foreground for the CLI, or on a background thread for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tinkerx.serve.context import Context, ServerConfig
from tinkerx.serve.registry import Registry


def make_app(service: Any, base_model: str, state_dir: Path, config: ServerConfig):
    from tinkerx.serve.app import build_app

    from tinkerx.serve.tokenizers import register_tokenizer

    state_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(service, "limit_tokens_per_forward"):  # the local backend: the same budget as training.max_tokens_per_forward
        service.limit_tokens_per_forward(config.max_tokens_per_forward)
    ctx = Context(service=service, base_model=base_model, registry=Registry(state_dir), config=config)
    register_tokenizer(base_model, service.get_tokenizer(base_model))
    return build_app(ctx), ctx


def _uvicorn_server(app, host: str, port: int):
    import uvicorn

    # A held-open poll must not delay shutdown by its whole hold time.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    return uvicorn.Server(config)


def serve_forever(app, host: str, port: int) -> None:
    _uvicorn_server(app, host, port).run()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerThread:
    """``with ServerThread(app) as server: tinker.ServiceClient(base_url=server.url, ...)``"""

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        self.context: Context | None = None
        self._server = _uvicorn_server(app, self.host, self.port)
        self._thread = threading.Thread(target=self._server.run, name="tinkerx-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"tinkerx serve did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def local_server(
    model_loader: Any, state_dir: Path, config: ServerConfig | None = None, seed: int = 0, device: str = "cpu"
) -> Iterator[ServerThread]:
    """The local backend served on a free loopback port for the duration of the block.

    ``server.context.config`` may be changed while it runs (latency, faults): tests and benchmarks do.
    """
    from tinkerx.backends.local import LocalBackend

    backend = LocalBackend(device=device)
    service = backend.open([model_loader], state_dir, seed=seed)
    app, ctx = make_app(service, model_loader.base_model, Path(state_dir), config or ServerConfig())
    try:
        with ServerThread(app) as server:
            server.context = ctx
            yield server
    finally:
        ctx.close()
        backend.close()

"""``backend=tinker``: the real ``tinker`` SDK, against Tinker or any server speaking its protocol.

``open`` returns a plain ``tinker.ServiceClient``, so methods run unchanged. Around it:

- the API key comes from ``$TINKER_API_KEY`` (or ``api_key_env``) or a ``.env`` file, is checked
  before any work starts, and is handed to the SDK directly: it is never put in the environment,
  a config, a log or the recorded traffic;
- the SDK is made to use httpx's own transport instead of its Rust one (pyqwest), so vcrpy can
  record every request to ``http_traffic.yaml`` and ``replay=PATH`` can play a run back with no
  server (see ``tinker_traffic``);
- ``proxy=true`` routes the SDK through mitmweb to watch the traffic live (see ``tinker_proxy``).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Callable

from tinkerx.errors import ConfigError, UserError

CASSETTE_NAME = "http_traffic.yaml"
logger = logging.getLogger(__name__)
_JWT = re.compile(r"^eyJ[\w-]*\.[\w-]+\.[\w-]*$")


def resolve_api_key(env_name: str) -> str:
    """The key from ``$env_name``, else from a ``.env`` file found from the working directory up."""
    key, source = os.environ.get(env_name), f"${env_name}"
    if not key:
        from dotenv import dotenv_values, find_dotenv  # deferred: read only when the key is not in the environment

        dotenv = find_dotenv(usecwd=True)
        key, source = (dotenv_values(dotenv).get(env_name) if dotenv else None), dotenv or ".env"
    if not key:
        raise UserError(f"backend=tinker needs an API key: set {env_name}, or put {env_name}=tml-... in a .env file")
    key = key.strip()
    if not (key.startswith("tml-") or _JWT.match(key)):
        # Never echo the value: a malformed key may still be most of a real one.
        raise UserError(f"the API key in {source} is malformed: Tinker keys start with 'tml-' (or are a JWT)")
    return key


def check_reachable(base_url: str | None, timeout_s: float) -> None:
    """UserError unless a Tinker server answers within ``timeout_s`` (any status but 404: auth comes later)."""
    import httpx  # deferred: the tinker SDK and its HTTP stack stay off the CLI's start-up path
    from tinker.lib.base_url import resolve_base_url  # deferred: as above

    server = resolve_base_url(base_url)
    url = f"{server.rstrip('/')}/api/v1/healthz"
    try:
        status = httpx.get(url, timeout=timeout_s).status_code
    except httpx.HTTPError as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise UserError(
            f"cannot reach the Tinker server at {server} within {timeout_s:g}s ({type(e).__name__}: {reason}): "
            "check backend.base_url (or $TINKER_BASE_URL), that the server is running (python -m tinkerx.serve for "
            "your own) and your network or proxy settings"
        ) from None
    if status == 404:  # every Tinker server has this endpoint (the SDK's health check)
        raise UserError(f"{server} answers, but not as a Tinker server ({url} is 404): check backend.base_url (or $TINKER_BASE_URL)")


class TinkerBackend:
    def __init__(
        self,
        base_url: str | None = None,
        api_key_env: str = "TINKER_API_KEY",
        record: bool = True,
        replay: str | None = None,
        proxy: bool = False,
        proxy_port: int = 8080,
        proxy_web_port: int = 8081,
        telemetry: bool = False,
        connect_timeout_s: float = 15.0,
        record_flush_s: float = 60.0,
    ) -> None:
        if base_url is not None and not re.match(r"^https?://", base_url):
            raise ConfigError(f"backend.base_url must start with http:// or https://, got {base_url!r}")
        self.base_url, self.api_key_env = base_url, api_key_env
        self.record, self.replay = record, replay
        self.proxy, self.proxy_port, self.proxy_web_port = proxy, proxy_port, proxy_web_port
        self.telemetry = telemetry
        self.connect_timeout_s = connect_timeout_s
        self.record_flush_s = record_flush_s
        self._service: Any = None
        self._cassette: Any = None
        self._mitmweb: Any = None
        self._undo: list[Callable[[], None]] = []  # what close() runs, last first, to restore the process

    def open(self, model_loaders: Any, run_dir: Path, seed: int = 0) -> Any:
        """A ``tinker.ServiceClient``. The model loaders and seed are the server's business here."""
        replay = Path(self.replay).expanduser() if self.replay else None
        if replay is not None and not replay.is_file():
            raise UserError(f"backend.replay: no recorded traffic at {replay}")
        # Replay talks to no server, so it needs no credentials: any well-formed key will do.
        key = "tml-replay" if replay else resolve_api_key(self.api_key_env)
        if not replay:
            # The SDK retries an unreachable server for minutes before it gives up with a traceback.
            check_reachable(self.base_url, self.connect_timeout_s)
        import tinker  # deferred: the SDK stays off the CLI's start-up path

        try:
            self._prepare(Path(run_dir), replay, key)
            self._service = tinker.ServiceClient(base_url=self.base_url, api_key=key)
        except BaseException:
            self.close()  # undo whatever was set up: nobody else will, open() never returned
            raise
        return self._service

    def _prepare(self, run_dir: Path, replay: Path | None, key: str) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        # Telemetry batches depend on timing, so they would make recordings unreplayable.
        self._set_env("TINKER_TELEMETRY", "1" if self.telemetry else "0")
        # vcrpy logs every response body at INFO, which Hydra would copy into the run's log.
        vcr_logger = logging.getLogger("vcr")
        self._undo.append(lambda level=vcr_logger.level: vcr_logger.setLevel(level))
        vcr_logger.setLevel(logging.WARNING)
        proxy_url, verify = None, True
        if self.proxy and not replay:
            from tinkerx.backends.tinker_proxy import Mitmweb, trust_mitmproxy  # deferred: mitmproxy only with backend.proxy

            self._mitmweb = Mitmweb(self.proxy_port, self.proxy_web_port, run_dir / "mitmweb.log").start()
            proxy_url, verify = self._mitmweb.url, trust_mitmproxy()
        self._use_httpx_transport(proxy_url, verify)
        if self.record or replay:
            from tinker.lib.base_url import resolve_base_url  # deferred: the SDK, as above

            from tinkerx.backends.tinker_traffic import use_cassette  # deferred: vcrpy only with backend.record / replay

            path = replay if replay else _new_cassette_path(run_dir)
            server = resolve_base_url(self.base_url)  # what the SDK will use: argument, $TINKER_BASE_URL or prod
            self._cassette = use_cassette(path, replay=replay is not None, secret=key, server=server)
            cassette = self._cassette.__enter__()
            if replay is None and self.record_flush_s > 0:
                cassette.start_flushing(self.record_flush_s)  # a killed run keeps what it recorded
                self._undo.append(cassette.stop_flushing)

    def _use_httpx_transport(self, proxy_url: str | None, verify: Any) -> None:
        """Every SDK connection goes through ``httpx.AsyncHTTPTransport``, which vcrpy patches."""
        import httpx  # deferred: the SDK's HTTP stack, as above
        import tinker._base_client as base  # deferred: as above

        def transport() -> httpx.AsyncHTTPTransport:
            return httpx.AsyncHTTPTransport(http2=True, proxy=proxy_url, verify=verify)

        original = base.AsyncHttpxClientWrapper

        class RecordableClient(original):  # type: ignore[misc, valid-type]
            def __init__(self, **kwargs: Any) -> None:
                kwargs["transport"] = transport()
                super().__init__(**kwargs)

        # The SDK picks pyqwest unless its server says otherwise (tinkerx.serve does; Tinker may not).
        self._set(base, "_default_pyqwest_transport", transport)
        self._set(base, "AsyncHttpxClientWrapper", RecordableClient)

    # Everything open() changes in the process is undone by close(), in reverse order.
    def _set(self, target: Any, name: str, value: Any) -> None:
        self._undo.append(lambda old=getattr(target, name): setattr(target, name, old))
        setattr(target, name, value)

    def _set_env(self, name: str, value: str) -> None:
        old = os.environ.get(name)
        self._undo.append(lambda: os.environ.pop(name, None) if old is None else os.environ.__setitem__(name, old))
        os.environ[name] = value

    def close(self, status: str = "success") -> None:
        try:
            if self._service is not None:
                # Finishes the session (recorded too) and stops the heartbeat before the file is written.
                self._service.close(status).result(timeout=30)
        except Exception as e:  # a server gone by now must not turn a finished run into a failed one
            logger.warning("could not finish the Tinker session cleanly: %s: %s", type(e).__name__, e)
        finally:
            self._service = None
            if self._cassette is not None:
                self._cassette.__exit__(None, None, None)
                self._cassette = None
            while self._undo:
                self._undo.pop()()
            if self._mitmweb is not None:
                self._mitmweb.stop()
                self._mitmweb = None


def _new_cassette_path(run_dir: Path) -> Path:
    """``http_traffic.yaml``, or ``http_traffic.N.yaml`` for the Nth session of a resumed run: no
    session's recording replaces another's."""
    path, n = run_dir / CASSETTE_NAME, 1
    while path.exists():
        n += 1
        path = run_dir / f"{Path(CASSETTE_NAME).stem}.{n}.yaml"
    return path

"""``backend.proxy=true``: watch the SDK's traffic live in mitmweb (``pip install 'tinkerx[proxy]'``).

mitmproxy decrypts HTTPS by presenting certificates signed by its own CA, which it creates in
``~/.mitmproxy`` on first start. tinkerx trusts that CA for the SDK's connections only (nothing
else in the process, nothing system-wide); without it every request fails with
``CERTIFICATE_VERIFY_FAILED``. Plain ``http://`` servers (``tinkerx.serve``) need no certificate.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

from tinkerx.errors import UserError

CA_FILE = Path("~/.mitmproxy/mitmproxy-ca-cert.pem").expanduser()


class Mitmweb:
    def __init__(self, port: int, web_port: int, log_path: Path) -> None:
        self.port, self.web_port, self.log_path = port, web_port, log_path
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Mitmweb":
        exe = shutil.which("mitmweb")
        if exe is None:
            raise UserError("backend.proxy=true needs mitmweb: pip install 'tinkerx[proxy]' (or pip install mitmproxy)")
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [exe, "--listen-host", "127.0.0.1", "--listen-port", str(self.port), "--web-port", str(self.web_port),
             "--set", "web_open_browser=false"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not _listening(self.port) or not CA_FILE.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise UserError(f"mitmweb did not start on port {self.port}; see {self.log_path}")
            time.sleep(0.1)
        print(f"tinkerx: watching Tinker traffic at http://127.0.0.1:{self.web_port} (mitmweb)", flush=True)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None


def trust_mitmproxy() -> ssl.SSLContext:
    """The usual trust store plus mitmproxy's CA, for the SDK's HTTPS connections through the proxy."""
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    context.load_verify_locations(cafile=str(CA_FILE))
    return context


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0

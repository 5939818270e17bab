"""Ctrl-C and SIGTERM stop a run cleanly: the current step finishes, a resume point is saved, and the
run ends with ``status: interrupted``. A second Ctrl-C abandons the step at once."""

from __future__ import annotations

import signal
import threading
from typing import Any

from tinkerx.runs.display import console

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequests:
    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, mid-step
        self.signal = signum
        console.print(f"[yellow]{signal.Signals(signum).name}: finishing the current step, then saving and stopping (Ctrl-C again to abandon it)[/yellow]")

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

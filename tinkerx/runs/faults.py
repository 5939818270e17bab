"""Crash injection for the resume tests: ``TINKERX_KILL_AT=<point>:<step>`` SIGKILLs the process there.

Points: ``step`` (a step computed but not yet recorded), ``checkpoint`` (a resume point's files
written but not yet renamed into place), ``backend_checkpoint`` (the backend's weights written under
their temporary name). A real kill can land anywhere; these are the moments where a careless design
would lose or corrupt something, so the tests aim at them on purpose.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "TINKERX_KILL_AT"


def kill_point(point: str, step: int) -> None:
    if os.environ.get(KILL_ENV) == f"{point}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)

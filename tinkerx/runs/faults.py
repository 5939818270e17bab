"""Crash injection for the resume tests: ``TINKERX_KILL_AT=<point>:<step>`` SIGKILLs the process there;
``TINKERX_SIGTERM_AT=<point>:<step>`` sends it a SIGTERM there instead (a stop request that lands at a
known moment, e.g. ``started:0``: while the run starts, before its first step).

Points: ``step`` (a step computed but not yet recorded), ``checkpoint`` (a resume point's files
written but not yet renamed into place), ``backend_checkpoint`` (the backend's weights written under
their temporary name). A real kill can land anywhere; these are the moments where a careless design
would lose or corrupt something, so the tests aim at them on purpose.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "TINKERX_KILL_AT"
SIGTERM_ENV = "TINKERX_SIGTERM_AT"


def kill_point(point: str, step: int) -> None:
    where = f"{point}:{step}"
    if os.environ.get(KILL_ENV) == where:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(SIGTERM_ENV) == where:
        os.kill(os.getpid(), signal.SIGTERM)

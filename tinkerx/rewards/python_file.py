"""A user's own reward: ``compute_reward(completion, ground_truth) -> float`` in a Python file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tinkerx.errors import UserError
from tinkerx.rewards.guarded import call_with_timeout, describe_error


class PythonFileReward:
    """Loads ``path`` once at construction, so a missing file or function stops the run at start-up.

    A relative ``path`` is relative to the directory the command was run from (Hydra keeps the
    working directory unchanged). The import runs on a daemon thread and may take at most
    ``import_timeout_s``: a file that waits on input or loops at import stops the run with one line
    instead of hanging it. Each call's own time limit is the run's ``reward_timeout_s``.
    """

    def __init__(self, path: str, import_timeout_s: float = 30.0) -> None:
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise UserError(f"reward file not found: {file}")
        # Registered in sys.modules so dataclasses, pickling and relative imports in the user's
        # file behave as they would for an ordinary module.
        module_name = f"tinkerx_user_reward_{file.stem}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        outcome = call_with_timeout(spec.loader.exec_module, (module,), import_timeout_s)
        if outcome.timed_out or outcome.error is not None:
            del sys.modules[module_name]
        if outcome.timed_out:
            raise UserError(f"{file}: importing the reward did not finish within {import_timeout_s:g}s "
                            "(reward.import_timeout_s): does it wait on input, the network or a loop at import time?")
        if outcome.error is not None:
            raise UserError(f"{file}: importing the reward failed: {describe_error(outcome.error)}")
        fn = getattr(module, "compute_reward", None)
        if not callable(fn):
            raise UserError(f"{file}: no function compute_reward(completion, ground_truth) -> float")
        self._fn = fn
        self.path = str(file)
        self.name = f"python:{file.name}"

    def compute_reward(self, completion: str, ground_truth: str) -> float:
        return self._fn(completion, ground_truth)

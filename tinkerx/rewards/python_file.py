"""A user's own reward: ``compute_reward(completion, ground_truth) -> float`` in a Python file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tinkerx.errors import UserError


class PythonFileReward:
    """Loads ``path`` once at construction, so a missing file or function stops the run at start-up.

    A relative ``path`` is relative to the directory the command was run from (Hydra keeps the
    working directory unchanged).
    """

    def __init__(self, path: str) -> None:
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise UserError(f"reward file not found: {file}")
        # Registered in sys.modules so dataclasses, pickling and relative imports in the user's
        # file behave as they would for an ordinary module.
        module_name = f"tinkerx_user_reward_{file.stem}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[module_name]
            message = " ".join(str(e).split())
            raise UserError(f"{file}: importing the reward failed: {type(e).__name__}: {message}") from None
        fn = getattr(module, "compute_reward", None)
        if not callable(fn):
            raise UserError(f"{file}: no function compute_reward(completion, ground_truth) -> float")
        self._fn = fn
        self.path = str(file)
        self.name = f"python:{file.name}"

    def compute_reward(self, completion: str, ground_truth: str) -> float:
        return self._fn(completion, ground_truth)

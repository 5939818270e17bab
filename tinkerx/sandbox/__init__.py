"""Running model-written code against tests: the executor contract and the local sandbox."""

from tinkerx.sandbox.executor import OUTCOMES, Executor, Job, Outcome
from tinkerx.sandbox.local import Limits, LocalProcessExecutor, namespaces_available

__all__ = ["OUTCOMES", "Executor", "Job", "Limits", "LocalProcessExecutor", "Outcome", "namespaces_available"]

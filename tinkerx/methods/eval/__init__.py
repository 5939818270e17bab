"""``method=eval``: benchmark a base model or a checkpoint on a suite, and compare with a baseline."""

from tinkerx.methods.eval.method import Evaluate

__all__ = ["Evaluate"]

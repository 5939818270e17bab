"""``backend=openai``: evaluate a model behind any OpenAI-compatible HTTP endpoint.

Import ``OpenAIBackend`` from here; the ``openai`` client is imported only when a run opens it.
"""

from tinkerx.backends.openai.backend import OpenAIBackend

__all__ = ["OpenAIBackend"]

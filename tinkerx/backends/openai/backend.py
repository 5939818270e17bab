"""``backend=openai``: a model served by ollama, vLLM, llama.cpp, a hosted API or ``tinkerx.serve``.

An endpoint only samples, so it serves ``method=eval``; ``tinkerx.build`` refuses training methods
(``can_train``). ``open`` checks the endpoint before any data is read: an unreachable server or a
model it does not serve ends the run with one line. The API key is read from the variable named by
``api_key_env`` and handed to the client only; the run folder records the variable's name.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Sequence

from tinkerx.errors import ConfigError, UserError

APIS = ("chat", "completions")


class OpenAIBackend:
    can_train = False

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api: str = "chat",
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        max_retries: int = 4,
        concurrency: int = 8,
    ) -> None:
        if not re.match(r"^https?://", base_url or ""):
            raise ConfigError(f"backend.base_url must start with http:// or https://, got {base_url!r}")
        if api not in APIS:
            raise ConfigError(f"backend.api must be one of {', '.join(APIS)}, got {api!r}")
        if timeout_s <= 0:
            raise ConfigError(f"backend.timeout_s must be > 0, got {timeout_s}")
        if max_retries < 0:
            raise ConfigError(f"backend.max_retries must be >= 0, got {max_retries}")
        if concurrency < 1:
            raise ConfigError(f"backend.concurrency must be >= 1, got {concurrency}")
        self.base_url, self.model, self.api, self.api_key_env = base_url.rstrip("/"), model, api, api_key_env
        self.timeout_s, self.max_retries, self.concurrency = timeout_s, max_retries, concurrency
        self._service: Any = None
        self._run_dir: Path | None = None
        self._quieted: list[tuple[str, int]] = []  # loggers open() turned down, and their levels

    def open(self, model_loaders: Any | Sequence[Any], run_dir: Path, seed: int = 0) -> Any:
        """An ``EndpointService``. The model config only matters for ``api=completions``: its chat
        template renders the prompt text, so it must match the served model's."""
        from tinkerx.backends.openai.client import EndpointService, make_client

        # Hydra logs at INFO: httpx would log every request and openai every retry into the run's log.
        for name in ("httpx", "openai"):
            self._quieted.append((name, logging.getLogger(name).level))
            logging.getLogger(name).setLevel(logging.WARNING)
        client, attempts = make_client(self.base_url, os.environ.get(self.api_key_env), self.timeout_s, self.max_retries, self.concurrency)
        model = self._check_model(client)
        tokenizer = None
        if self.api == "completions":
            loaders = list(model_loaders) if isinstance(model_loaders, (list, tuple)) else [model_loaders]
            tokenizer = loaders[0].load_tokenizer()
        self._run_dir = Path(run_dir)
        self._service = EndpointService(client, attempts, model, self.api, self.concurrency, tokenizer)
        return self._service

    def _check_model(self, client: Any) -> str:
        """The model to ask for: ``backend.model``, checked against ``/v1/models`` where it lists any.

        A name the list lacks gets one 1-token request: servers may serve more than they list
        (``tinkerx.serve`` serves any checkpoint folder by its path)."""
        from tinkerx.backends.openai.client import list_models, model_answers

        offered = list_models(client, self.base_url, self.timeout_s)
        if offered is None:  # the server lists nothing: trust the configured name
            if self.model is None:
                raise ConfigError(f"backend.model: {self.base_url}/models lists no models; name one with backend.model=NAME")
            return self.model
        if self.model is None:
            if not offered:
                raise UserError(f"{self.base_url} serves no models (its /models list is empty)")
            return offered[0]
        if self.model not in offered and not model_answers(client, self.model, self.timeout_s):
            raise UserError(f"backend.model: {self.base_url} does not serve {self.model!r}; it offers: {', '.join(offered) or 'nothing'}")
        return self.model

    def close(self) -> None:
        while self._quieted:
            name, level = self._quieted.pop()
            logging.getLogger(name).setLevel(level)
        if self._service is None:
            return
        usage = {"base_url": self.base_url, "model": self._service.model, "api": self.api, "concurrency": self.concurrency, **self._service.usage()}
        if self._run_dir is not None:
            self._run_dir.mkdir(parents=True, exist_ok=True)
            (self._run_dir / "endpoint_usage.json").write_text(json.dumps(usage, indent=2) + "\n")
        self._service.close()
        self._service = None

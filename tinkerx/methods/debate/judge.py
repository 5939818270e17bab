"""The judge: a model, any model on any backend, that reads a debate and names the side it believes.

It is a component (``components.judge`` in ``conf/method/debate.yaml``). With ``model: null`` it is
the debaters' base model; given a model config of its own, ``build`` loads its ``model_loader``
into the backend beside the policy's. Either way it samples from
``service.create_sampling_client(base_model=...)`` like any other client, so the method never asks
which backend or model it has. Its weights are the base model's for the whole run: never trained.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tinkerx.chat import decode_completion, prompt_tokens
from tinkerx.errors import ConfigError
from tinkerx.methods.debate.prompts import judge_messages
from tinkerx.methods.debate.transcript import Transcript, Verdict
from tinkerx.methods.debate.verdict import parse_verdict
from tinkerx.sampler import sample_prompts


class Judge:
    def __init__(self, model: Mapping[str, Any] | None = None, max_tokens: int = 32, temperature: float = 0.0, prefill: str = "") -> None:
        if model is not None and ("loader" not in model or "base_model" not in model):
            raise ConfigError("components.judge.model must be null or a model config (base_model, loader): +model@components.judge.model=NAME")
        if max_tokens < 1:
            raise ConfigError(f"components.judge.max_tokens must be >= 1, got {max_tokens}")
        if temperature < 0:
            raise ConfigError(f"components.judge.temperature must be >= 0, got {temperature}")
        self.model_loader = model["loader"] if model is not None else None
        self.base_model = str(model["base_model"]) if model is not None else None
        # Text the judge's reply starts with, e.g. "Winner:": a small model then names a side instead
        # of continuing the transcript. It is part of the reply that is parsed and logged.
        self.max_tokens, self.temperature, self.prefill = max_tokens, temperature, prefill
        self._client: Any = None
        self._tokenizer: Any = None

    def start(self, service: Any, policy_base_model: str, policy_tokenizer: Any) -> None:
        """Connect to the run's service; without a model of its own the judge is the policy's base model."""
        base_model = self.base_model or policy_base_model
        self._client = service.create_sampling_client(base_model=base_model)
        self._tokenizer = self.model_loader.load_tokenizer() if self.model_loader is not None else policy_tokenizer

    def judge(self, transcripts: Sequence[Transcript]) -> None:
        """Sets each transcript's ``verdict`` (after the debate) and ``alone`` (same answers, no debate)."""
        conversations = [judge_messages(t.setup, t.turns) for t in transcripts]
        conversations += [judge_messages(t.setup, None) for t in transcripts]
        replies = self.complete(conversations)
        n = len(transcripts)
        for t, (text, tokens), (alone_text, alone_tokens) in zip(transcripts, replies[:n], replies[n:]):
            t.verdict = Verdict(parse_verdict(text, t.setup.answers), text, tokens)
            t.alone = Verdict(parse_verdict(alone_text, t.setup.answers), alone_text, alone_tokens)

    def complete(self, conversations: Sequence[Sequence[dict[str, str]]]) -> list[tuple[str, list[int]]]:
        """The judge's reply to each conversation, as (text, tokens); all requests in flight at once."""
        from tinker import types

        if self._client is None:
            raise RuntimeError("Judge.start(service) must be called before judging")
        params = types.SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature)
        prefill = self._tokenizer.encode(self.prefill, add_special_tokens=False) if self.prefill else []
        prompts = [prompt_tokens(self._tokenizer, c) + prefill for c in conversations]
        replies = []
        for future in sample_prompts(self._client, prompts, 1, params):
            tokens = list(future.result().sequences[0].tokens)
            replies.append((self.prefill + decode_completion(self._tokenizer, tokens), tokens))
        return replies

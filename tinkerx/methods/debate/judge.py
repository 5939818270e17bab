"""The judge: a model, any model on any backend, that reads a debate and names the side it believes.

It is a component (``components.judge`` in ``conf/method/debate.yaml``). With ``model: null`` it is
the debaters' base model; given a model config of its own, ``build`` loads its ``model_loader``
into the backend beside the policy's. Either way it reads through
``service.create_sampling_client(base_model=...)`` like any other client, so the method never asks
which backend or model it has. Its weights are the base model's for the whole run: never trained.

Verdicts (``verdict: logprobs``, the default) are read from the judge's next-token probabilities
of the two labels after ``verdict_prefix`` ("Winner:"), through ``compute_logprobs``: the judge
always decides, and nothing is parsed. Position bias is removed by judging each debate twice, as
written and with the sides' labels swapped, and averaging the two orders (verdict.py). Its free-text
reply is still sampled and kept in the transcript, for reading. ``verdict: text`` parses that reply
instead (a reply naming neither side is then no verdict).

A step's requests (every debate's labels in both orders, and the replies) all go out before any
answer is awaited. The local backend takes the label requests as one batch and reads both
single-token labels after the same prompt from one forward: half the forwards of one per label.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from tinkerx.chat import decode_completion, prompt_tokens
from tinkerx.errors import ConfigError
from tinkerx.methods.debate.prompts import SIDES, judge_messages
from tinkerx.methods.debate.transcript import Setup, Transcript, Turn, Verdict
from tinkerx.judges.labels import combine_orders, label_probability, request_label_logprobs
from tinkerx.methods.debate.verdict import parse_verdict, swapped
from tinkerx.methods.shared.policy import resolved
from tinkerx.sampler import sample_prompts

VERDICTS = ("logprobs", "text")


class Judge:
    def __init__(
        self,
        model: Mapping[str, Any] | None = None,
        max_tokens: int = 32,
        temperature: float = 0.0,
        prefill: str = "",
        verdict: str = "logprobs",
        verdict_prefix: str = "Winner:",
        both_orders: bool = True,
    ) -> None:
        if model is not None and ("loader" not in model or "base_model" not in model):
            raise ConfigError("components.judge.model must be null or a model config (base_model, loader): +model@components.judge.model=NAME")
        if max_tokens < 1:
            raise ConfigError(f"components.judge.max_tokens must be >= 1, got {max_tokens}")
        if temperature < 0:
            raise ConfigError(f"components.judge.temperature must be >= 0, got {temperature}")
        if verdict not in VERDICTS:
            raise ConfigError(f"components.judge.verdict {verdict!r} is not valid; valid: {', '.join(VERDICTS)}")
        self.model_loader = model["loader"] if model is not None else None
        self.base_model = str(model["base_model"]) if model is not None else None
        # Text the judge's reply starts with, e.g. "Winner:": a small model then names a side instead
        # of continuing the transcript. It is part of the reply that is parsed and logged.
        self.max_tokens, self.temperature, self.prefill = max_tokens, temperature, prefill
        self.verdict, self.verdict_prefix, self.both_orders = verdict, verdict_prefix, both_orders
        self._client: Any = None
        self._tokenizer: Any = None

    def start(self, service: Any, policy_base_model: str, policy_tokenizer: Any) -> None:
        """Connect to the run's service; without a model of its own the judge is the policy's base model."""
        base_model = self.base_model or policy_base_model
        self._client = resolved(service.create_sampling_client(base_model=base_model))
        self._tokenizer = self.model_loader.load_tokenizer() if self.model_loader is not None else policy_tokenizer

    def judge(self, transcripts: Sequence[Transcript], replies: Sequence[tuple[str, list[int]]] | None = None) -> None:
        """Sets each transcript's ``verdict`` (after the debate) and ``alone`` (same answers, no debate).

        ``replies``: the judge's free-text replies after each debate when they were sampled already
        (the judge's turn of a debate episode); otherwise they are sampled here. Transcripts of the
        same question (``Setup.question_id``) share one judgement without the debate.
        """
        n = len(transcripts)
        views: list[tuple[Setup, Sequence[Turn] | None]] = [(t.setup, t.turns) for t in transcripts]
        questions: dict[str, Setup] = {}
        for t in transcripts:
            questions.setdefault(t.setup.question_id, t.setup)
        alone_of = {question: n + i for i, question in enumerate(questions)}  # index of its view without a debate
        views += [(setup, None) for setup in questions.values()]
        # Every request is out before any answer is awaited: the label logprobs of every view in
        # every order, then the replies (on the service they all run concurrently).
        first_label_p = None
        if self.verdict == "logprobs":
            first_label_p = self._request_label_probabilities([judge_messages(s, t) for order in self._orders(views) for s, t in order])
        if replies is None:
            replies = self.complete([judge_messages(setup, turns) for setup, turns in views])
        else:
            replies = [(self.prefill + text, tokens) for text, tokens in replies] + self.complete([judge_messages(setup, turns) for setup, turns in views[n:]])
        if first_label_p is not None:
            verdicts = self._logprob_verdicts(views, replies, first_label_p())
        else:
            verdicts = [Verdict(parse_verdict(text, setup.answers), text, tokens) for (setup, _), (text, tokens) in zip(views, replies)]
        for t, with_debate in zip(transcripts, verdicts[:n]):
            t.verdict, t.alone = with_debate, verdicts[alone_of[t.setup.question_id]]

    def reply_client(self) -> "JudgeReplies":
        """The judge as a role of a debate episode: its replies at its own length and temperature, after its prefill."""
        from tinker import types

        if self._client is None:
            raise RuntimeError("Judge.start(service) must be called before judging")
        prefill = self._tokenizer.encode(self.prefill, add_special_tokens=False) if self.prefill else []
        return JudgeReplies(self._client, types.SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature), prefill)

    def _orders(self, views: list[tuple[Setup, Sequence[Turn] | None]]) -> list[list[tuple[Setup, Sequence[Turn] | None]]]:
        """The views as written and, with ``both_orders``, with the sides swapped."""
        return [views] + ([[swapped(setup, turns) for setup, turns in views]] if self.both_orders else [])

    def _logprob_verdicts(self, views: list[tuple[Setup, Sequence[Turn] | None]], replies: list[tuple[str, list[int]]], first_label_p: list[float]) -> list[Verdict]:
        """P(A) from the labels' probabilities (``first_label_p``: every view as written, then every view swapped)."""
        n = len(views)
        verdicts = []
        for i, ((setup, _), (text, tokens)) in enumerate(zip(views, replies)):
            as_written = first_label_p[i]
            p_a = combine_orders(as_written, first_label_p[n + i]) if self.both_orders else as_written
            winner = "A" if p_a > 0.5 else "B" if p_a < 0.5 else None  # an exact tie names no side
            orders_json = {"as_written": as_written, **({"swapped": first_label_p[n + i]} if self.both_orders else {})}
            verdicts.append(Verdict(winner, text, tokens, p_a=p_a, text_winner=parse_verdict(text, setup.answers), orders=orders_json))
        return verdicts

    def label_probabilities(self, conversations: Sequence[Sequence[dict[str, str]]]) -> list[float]:
        """P(first label) of each conversation, normalised over the two labels; all requests in flight at once."""
        return self._request_label_probabilities(conversations)()

    def _request_label_probabilities(self, conversations: Sequence[Sequence[dict[str, str]]]) -> Callable[[], list[float]]:
        """Sends every conversation's label requests as one batch; the returned call waits for the answers.

        The labels' requests share all but their last tokens, so a client that batches them
        (``compute_logprobs_many``) reads both labels from one forward when each is a single token.
        """
        if self._client is None:
            raise RuntimeError("Judge.start(service) must be called before judging")
        prefix = self._tokenizer.encode(self.verdict_prefix, add_special_tokens=False) if self.verdict_prefix else []
        labels = [self._tokenizer.encode(f" {side}" if self.verdict_prefix else side, add_special_tokens=False) for side in SIDES]
        prompts = [prompt_tokens(self._tokenizer, c) + prefix for c in conversations]
        totals = request_label_logprobs(self._client, prompts, labels)
        return lambda: [label_probability(*pair) for pair in totals()]

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


class JudgeReplies:
    """A sampling client for the episode runner that answers as the judge does: its own sampling
    parameters (whatever the runner passes for the debaters) and its prefill after the prompt."""

    def __init__(self, client: Any, params: Any, prefill_T: list[int]) -> None:
        self.client, self.params, self.prefill_T = client, params, prefill_T

    def _prefilled(self, prompt: Any) -> Any:
        from tinker import types

        return types.ModelInput.from_ints(prompt.to_ints() + self.prefill_T) if self.prefill_T else prompt

    def sample(self, prompt: Any, num_samples: int, sampling_params: Any) -> Any:
        return self.client.sample(prompt=self._prefilled(prompt), num_samples=num_samples, sampling_params=self.params)

    def sample_many(self, prompts: Sequence[Any], num_samples: int, sampling_params: Any, seeds: Sequence[int] | None = None) -> list[Any]:
        return sample_prompts(self.client, [self._prefilled(p).to_ints() for p in prompts], num_samples, self.params, seeds)

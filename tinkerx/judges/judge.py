"""A rubric judge: a model on any backend that grades replies against a rubric (tinkerx/judges/rubric.py).

Its model is the run's base model unless it names one (``model:``, a model config): ``build``
then serves that model's ``model_loader`` beside the policy's, as it does for the debate judge,
so the judge samples through the run's own service (local, Tinker, or an OpenAI-compatible
endpoint with ``backend=openai``). It is never trained.

Verdicts (``verdict``):
- ``logprobs``: from the judge's probabilities of the rubric's labels after its verdict prefix
  (tinkerx/judges/labels.py); always decides, the score is the labels' expected score.
- ``text``: from its sampled reply, parsed (tinkerx/judges/prompts.py). A reply naming no label is
  counted ``unparsed`` (warned once) and scores 0; a failed request is counted as an ``error``.
- ``auto`` (default): ``logprobs`` where the backend gives them, else ``text``.

A batch's requests are all in flight before any answer is awaited; the backends retry failed
requests under their own policy (the endpoint's ``max_retries``, the Tinker SDK's). Judgments are
cached in the run folder (cache.py) and counted (``metrics``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tinkerx.chat import decode_completion, prompt_tokens
from tinkerx.errors import ConfigError
from tinkerx.judges.cache import FILENAME, JudgmentCache, judgment_key, shared_cache
from tinkerx.judges.labels import can_score_labels, combine_orders, label_distribution, request_label_logprobs
from tinkerx.judges.prompts import judge_messages, parse_label
from tinkerx.judges.rubric import Rubric, load_rubric
from tinkerx.sampler import sample_chats, sample_prompts

log = logging.getLogger(__name__)
VERDICTS = ("auto", "logprobs", "text")


@dataclass
class Judgment:
    """One reply's (or pair's) verdict. ``score``: the reward (0 unless judged); pairwise, P(first reply better)."""

    label: str | None
    score: float
    outcome: str                      # judged | unparsed | error
    probabilities: dict[str, float] | None = None
    text: str | None = None
    cached: bool = False
    orders: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome == "judged" and self.score >= 0.5

    def to_json(self) -> dict[str, Any]:
        out = {"label": self.label, "score": self.score, "outcome": self.outcome, "passed": self.passed}
        if self.probabilities is not None:
            out["probabilities"] = self.probabilities
        if self.text is not None:
            out["text"] = self.text
        if self.orders:
            out["orders"] = self.orders
        return out


@dataclass(frozen=True)
class Case:
    """What is judged: the request, the reply (pairwise: two), and the data set's reference answer."""

    prompt: str
    replies: tuple[str, ...]
    reference: str | None = None


class LLMJudge:
    def __init__(
        self,
        rubric: str,
        model: Mapping[str, Any] | None = None,
        verdict: str = "auto",
        temperature: float = 0.0,
        max_tokens: int | None = None,
        batch_size: int = 64,
        cache: bool = True,
    ) -> None:
        if model is not None and ("loader" not in model or "base_model" not in model):
            raise ConfigError("the judge's model must be null or a model config (base_model, loader), e.g. +model@reward.judge.model=smollm2-135m")
        if verdict not in VERDICTS:
            raise ConfigError(f"judge verdict {verdict!r} is not valid; valid: {', '.join(VERDICTS)}")
        if batch_size < 1 or temperature < 0:
            raise ConfigError(f"judge batch_size must be >= 1 and temperature >= 0, got {batch_size} and {temperature}")
        self.rubric: Rubric = load_rubric(rubric)
        self.model_loader = model["loader"] if model is not None else None
        self.base_model = str(model["base_model"]) if model is not None else None
        self.verdict, self.temperature, self.batch_size, self.use_cache = verdict, temperature, batch_size, cache
        self.max_tokens = max_tokens or self.rubric.max_tokens
        self.counts: Counter[str] = Counter()
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._client: Any = None
        self._tokenizer: Any = None
        self.cache = JudgmentCache(None)
        self.mode = verdict
        self.identity = ""

    @property
    def name(self) -> str:
        return self.rubric.name

    def start(self, service: Any, policy_base_model: str, policy_tokenizer: Any, run_dir: Path | None = None) -> None:
        """Connect to the run's service (the judge's own model, or the policy's base model) and read the cache."""
        base_model = self.base_model or policy_base_model
        client = service.create_sampling_client(base_model=base_model)
        result = getattr(client, "result", None)  # a future on the local and Tinker backends; an endpoint's client is itself
        self._client = result() if callable(result) else client
        self._tokenizer = self.model_loader.load_tokenizer() if self.model_loader is not None else policy_tokenizer
        logprobs = can_score_labels(self._client)
        if self.verdict == "logprobs" and not logprobs:
            raise ConfigError("judge verdict=logprobs needs a backend that gives prompt logprobs (local, tinker); this endpoint does not: use verdict=auto or text")
        self.mode = "logprobs" if self.verdict == "auto" and logprobs else ("text" if self.verdict == "auto" else self.verdict)
        served = getattr(service, "served_model", None)
        self.identity = f"{served or base_model}|{self.mode}|t={self.temperature:g}|n={self.max_tokens}"
        if self.use_cache and run_dir is not None:
            self.cache = shared_cache(Path(run_dir) / FILENAME)

    # ---- judging ---------------------------------------------------------------------------
    def judge(self, cases: Sequence[Case]) -> list[Judgment]:
        """Every case's judgment, in order: cached ones read back, the others asked in batches."""
        if self._client is None:
            raise RuntimeError("LLMJudge.start(service, ...) must be called before judging")
        keys = [self._key(c) for c in cases]
        results: list[Judgment | None] = [None] * len(cases)
        todo: dict[str, list[int]] = {}  # each distinct case asked once (a group's identical samples too)
        for i, key in enumerate(keys):
            entry = self.cache.get(key)
            if entry is not None:
                j = entry["judgment"]
                results[i] = Judgment(j["label"], j["score"], j["outcome"], j.get("probabilities"), j.get("text"), cached=True, orders=j.get("orders", {}))
            else:
                todo.setdefault(key, []).append(i)
        asked = list(todo)
        for start in range(0, len(asked), self.batch_size):
            chunk = asked[start : start + self.batch_size]
            judged = self._ask([cases[todo[key][0]] for key in chunk])
            entries = []
            for key, judgment in zip(chunk, judged):
                for i in todo[key]:
                    results[i] = judgment
                if judgment.outcome != "error":  # a failed request is asked again next time
                    c = cases[todo[key][0]]
                    entries.append({"key": key, "rubric": self.rubric.name, "judge": self.identity, "prompt": c.prompt,
                                    "replies": list(c.replies), "reference": c.reference, "judgment": judgment.to_json()})
            self.cache.put(entries)
        with self._lock:
            self.counts["cached"] += len(cases) - len(asked)
            self.counts.update(r.outcome for r in results if r is not None)
        return [r for r in results if r is not None]

    def judge_replies(self, prompts: Sequence[str], replies: Sequence[str], references: Sequence[str | None] | None = None) -> list[Judgment]:
        references = references if references is not None else [None] * len(replies)
        return self.judge([Case(p, (r,), ref) for p, r, ref in zip(prompts, replies, references)])

    def _key(self, case: Case) -> str:
        reference = case.reference if self.rubric.show_reference else None
        return judgment_key(f"{self.rubric.name}:{self.rubric.fingerprint()}", self.identity, case.prompt, list(case.replies), reference)

    def _ask(self, cases: list[Case]) -> list[Judgment]:
        with self._lock:
            self.counts["calls"] += len(cases)
        pairwise = self.rubric.kind == "pairwise"
        views = [judge_messages(self.rubric, c.prompt, c.replies, c.reference) for c in cases]
        if pairwise:  # the same pair with the replies' places exchanged: position bias averaged out
            views += [judge_messages(self.rubric, c.prompt, c.replies[::-1], c.reference) for c in cases]
        try:
            per_view = self._by_logprobs(views) if self.mode == "logprobs" else self._by_text(views)
        except Exception as e:  # noqa: BLE001 - the backend gave up after its retries: counted, the run goes on
            self._warn_once("error", f"judge {self.rubric.name}: a batch of {len(cases)} requests failed ({type(e).__name__}: {' '.join(str(e).split())[:200]}); they score 0 and are counted as judge errors")
            return [Judgment(None, 0.0, "error") for _ in cases]
        judgments = [self._pair(per_view[i], per_view[len(cases) + i]) for i in range(len(cases))] if pairwise else per_view[: len(cases)]
        unparsed = sum(j.outcome == "unparsed" for j in judgments)
        if unparsed:
            example = next(j.text for j in judgments if j.outcome == "unparsed")
            self._warn_once("unparsed", f"judge {self.rubric.name}: {unparsed} of {len(judgments)} replies named no label "
                            f"({', '.join(self.rubric.labels)}), e.g. {(example or '')[:80]!r}; they score 0 and are counted (judge/{self.rubric.name}/unparsed)")
        return judgments

    def _by_logprobs(self, views: list[list[dict[str, str]]]) -> list[Judgment]:
        tok = self._tokenizer
        prefix = tok.encode(self.rubric.verdict_prefix, add_special_tokens=False) if self.rubric.verdict_prefix else []
        labels = [tok.encode(f" {label}" if self.rubric.verdict_prefix else label, add_special_tokens=False) for label in self.rubric.labels]
        prompts = [prompt_tokens(tok, v) + prefix for v in views]
        judgments = []
        for totals in request_label_logprobs(self._client, prompts, labels)():
            p = label_distribution(totals)
            best = max(range(len(p)), key=p.__getitem__)
            score = sum(pk * sk for pk, sk in zip(p, self.rubric.scores))
            judgments.append(Judgment(self.rubric.labels[best], score, "judged", dict(zip(self.rubric.labels, p))))
        return judgments

    def _by_text(self, views: list[list[dict[str, str]]]) -> list[Judgment]:
        from tinker import types

        params = types.SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature)
        if callable(getattr(self._client, "sample_chats", None)):  # an endpoint applies its own chat template
            texts = [(s[0].text, s[0].error) for s in (f.result() for f in sample_chats(self._client, self._tokenizer, views, 1, params))]
        else:  # a token backend: the reply starts with the verdict prefix, so a small model names a label
            tok, prefill = self._tokenizer, self.rubric.verdict_prefix
            prefix = tok.encode(prefill, add_special_tokens=False) if prefill else []
            futures = sample_prompts(self._client, [prompt_tokens(tok, v) + prefix for v in views], 1, params)
            texts = [(prefill + decode_completion(tok, f.result().sequences[0].tokens), None) for f in futures]
        judgments = []
        for text, error in texts:
            if error is not None:
                self._warn_once("error", f"judge {self.rubric.name}: a request failed ({error[:200]}); it scores 0 and is counted as a judge error")
                judgments.append(Judgment(None, 0.0, "error", text=error))
                continue
            label = parse_label(text, self.rubric)
            judgments.append(Judgment(label, self.rubric.score(label), "judged", text=text) if label else Judgment(None, 0.0, "unparsed", text=text))
        return judgments

    def _pair(self, as_written: Judgment, swapped: Judgment) -> Judgment:
        """P(the first reply is better) from both orders; in the swapped order it is shown second."""
        first, second = self.rubric.labels
        orders = {"as_written": as_written.to_json(), "swapped": swapped.to_json()}
        if "error" in (as_written.outcome, swapped.outcome):
            return Judgment(None, 0.0, "error", orders=orders)
        if "unparsed" in (as_written.outcome, swapped.outcome):
            return Judgment(None, 0.5, "unparsed", orders=orders)
        if as_written.probabilities is not None and swapped.probabilities is not None:
            p = combine_orders(as_written.probabilities[first], swapped.probabilities[first])
        else:
            p = 0.5 * ((as_written.label == first) + (swapped.label == second))
        label = first if p > 0.5 else second if p < 0.5 else None
        return Judgment(label, p, "judged", {first: p, second: 1.0 - p}, orders=orders)

    def _warn_once(self, kind: str, message: str) -> None:
        with self._lock:
            first = kind not in self._warned
            self._warned.add(kind)
        (log.warning if first else log.debug)(message)

    def metrics(self, prefix: str | None = None) -> dict[str, float]:
        """Counts so far: requests asked, answered from the cache, and each outcome."""
        prefix = prefix or f"judge/{self.rubric.name}"
        with self._lock:
            counts = {"calls": self.counts["calls"], "cached": self.counts["cached"], "judged": self.counts["judged"],
                      "unparsed": self.counts["unparsed"], "errors": self.counts["error"]}
        return {f"{prefix}/{k}": float(v) for k, v in counts.items()}

"""lm-evaluation-harness model ``tinkerx``: a tinkerx model or checkpoint, evaluated in process.

    python -m tinkerx.harness.lm_eval --model tinkerx --model_args model=smollm2-135m,checkpoint=RUN_DIR --tasks ...
    lm_eval.simple_evaluate(model=TinkerxLM(model="smollm2-135m", checkpoint=RUN_DIR), tasks=[...])

model_args: ``model`` (a conf/model option), ``checkpoint`` (checkpoint folder, run folder or
``tinker://`` path; none = the base model), ``backend`` (local | tinker), ``base_url`` (backend=tinker:
a Tinker-compatible server), ``batch_size`` (requests per scoring call), ``max_length`` (default the
model's context), ``seed``.

- ``loglikelihood``: every context+continuation is scored by ``tinkerx.eval.prompt_scores`` (a batch of
  requests is one call; each sequence its own forward, so results do not depend on batching);
  ``is_greedy`` is true when every continuation token's logprob is its position's top-1. A client
  that returns no top-k (Tinker's ``compute_logprobs``) gets is_greedy from greedy decoding instead.
- ``loglikelihood_rolling``: lm-eval's rolling windows of ``max_length``, scored the same way.
- ``generate_until``: the sampler, greedy unless the task asks for sampling, cut at ``until``.
- A prompt longer than ``max_length`` is left-truncated (lm-eval's convention: the start of the
  context is dropped, the continuation is kept), and a generation prompt leaves room for
  ``max_gen_toks``. An empty continuation is refused (one line): it has no tokens to score.
"""

from __future__ import annotations

from typing import Any

import lm_eval.models  # noqa: F401 - lm-eval fills its registry lazily, only while empty: ours must not hide its models
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from tinkerx.errors import DataError
from tinkerx.harness.model_access import open_model
from tinkerx.eval.prompt_scores import score_prompts

DEFAULT_MAX_LENGTH = 2048  # lm-eval's own default, for a model that states no context length
DEFAULT_MAX_GEN_TOKS = 256


@register_model("tinkerx")
class TinkerxLM(TemplateLM):
    def __init__(self, model: str = "tiny", checkpoint: str | None = None, backend: str = "local", base_url: str | None = None,
                 batch_size: int | str = 64, max_length: int | None = None, seed: int = 0, overrides: str | None = None, **_: Any) -> None:
        super().__init__()
        extra = [f"backend.base_url={base_url}"] if base_url else []
        extra += [o for o in (overrides or "").split(";") if o]  # further config overrides, ';'-separated
        self.opened = open_model(model, checkpoint or None, backend, extra, seed=int(seed))
        self.client, self.tokenizer = self.opened.client, self.opened.tokenizer
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 64
        self._max_length = int(max_length) if max_length else (self.opened.context_length or DEFAULT_MAX_LENGTH)
        self.seed = int(seed)

    # ---- tokenization (lm-eval's TemplateLM splits context and continuation with these) ------
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return self.opened.base_model.replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_: Any) -> list[int]:
        return self.tokenizer.encode(string, add_special_tokens=bool(add_special_tokens))

    def tok_decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens)

    # ---- scoring ------------------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests: list, disable_tqdm: bool = False, **_: Any) -> list[tuple[float, bool]]:
        rows = []
        for (context, continuation), context_enc, continuation_enc in requests:
            if not continuation_enc:
                raise DataError(f"lm-eval asked for the log-likelihood of an empty continuation after {context[-60:]!r}: "
                                "a task's choices and targets must be non-empty text")
            rows.append(self._fit(context_enc, continuation_enc))
        out: list[tuple[float, bool]] = []
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            scores = score_prompts(self.client, [tokens for tokens, _ in batch], top_k=1)
            greedy_by_decoding = [i for i, s in enumerate(scores) if s.top is None]
            decoded = self._greedy_matches([batch[i] for i in greedy_by_decoding]) if greedy_by_decoding else []
            fallback = dict(zip(greedy_by_decoding, decoded))
            for i, ((tokens, n), s) in enumerate(zip(batch, scores)):
                positions = range(len(tokens) - n, len(tokens))
                logprob = sum(s.logprobs[p] for p in positions)
                greedy = fallback[i] if i in fallback else all(s.logprobs[p] == s.top[p][0][1] for p in positions)
                out.append((float(logprob), bool(greedy)))
        return out

    def _fit(self, context_enc: list[int], continuation_enc: list[int]) -> tuple[list[int], int]:
        """The sequence to score and how many of its last tokens are scored, left-truncated to max_length."""
        tokens = (context_enc + continuation_enc)[-self.max_length :]
        return tokens, min(len(continuation_enc), len(tokens) - 1)  # the first token has no logprob

    def _greedy_matches(self, rows: list[tuple[list[int], int]]) -> list[bool]:
        """For clients without top-k: decode each continuation's length greedily and compare."""
        from tinker import types

        from tinkerx.sampler import sample_prompts

        matches = []
        for tokens, n in rows:
            params = types.SamplingParams(max_tokens=n, temperature=0.0, seed=self.seed)
            sequence = sample_prompts(self.client, [tokens[:-n]], 1, params)[0].result().sequences[0]
            matches.append(list(sequence.tokens)[:n] == tokens[-n:])
        return matches

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list[float]:
        out = []
        for request in requests:
            (text,) = request.args
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                self.tok_encode(text), prefix_token=self.prefix_token_id, max_seq_len=self.max_length, context_len=1)]
            scored = self._loglikelihood_tokens([((None, None), context, continuation) for context, continuation in windows])
            out.append(sum(logprob for logprob, _ in scored))
        return out

    # ---- generation ---------------------------------------------------------------------------
    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        """Requests with the same generation settings decode together, ``batch_size`` prompts per call."""
        from tinker import types

        from tinkerx.sampler import prompt_seeds, sample_prompts

        seeds = prompt_seeds(self.seed, len(requests))  # by request: each its own draws, the same on a rerun
        groups: dict[tuple, list[int]] = {}
        settings = []
        for i, request in enumerate(requests):
            context, gen_kwargs = request.args
            kwargs = dict(gen_kwargs or {})
            until = kwargs.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            max_gen = int(kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS))
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample", False) else 0.0
            settings.append((context, until, max_gen))
            groups.setdefault((until, max_gen, temperature), []).append(i)
        out: list[str] = [""] * len(requests)
        for (until, max_gen, temperature), members in groups.items():
            params = types.SamplingParams(max_tokens=max_gen, temperature=temperature, seed=self.seed, stop=[s for s in until if s] or None)
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                # Left-truncated so the reply fits the context.
                prompts = [self.tok_encode(settings[i][0])[-max(1, self.max_length - max_gen) :] for i in chunk]
                chunk_seeds = None if seeds is None else [seeds[i] for i in chunk]
                for i, future in zip(chunk, sample_prompts(self.client, prompts, 1, params, chunk_seeds)):
                    text = self.tokenizer.decode(list(future.result().sequences[0].tokens), skip_special_tokens=True)
                    cut = min((text.find(s) for s in until if s and s in text), default=-1)
                    out[i] = text[:cut] if cut >= 0 else text
                    self.cache_hook.add_partial("generate_until", requests[i].args, out[i])
        return out

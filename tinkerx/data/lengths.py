"""Every example checked against the model's context before step 1, by what its method does with it.

What an example costs depends on the data path, not only on its text:

- ``reply``: SFT (and the validation loss of SFT and off-policy distillation) trains on prompt +
  reply, so both must fit.
- ``pair``: DPO on preference pairs from a file trains on prompt + chosen and prompt + rejected.
- ``generate``: GRPO, on-policy distillation, DPO with pairs made by sampling and debate sample
  from the prompt, so the prompt plus the generation budget must fit (debate: every turn of both
  debaters and the judge's verdict, an upper bound from the config, after the longest prompt a
  debate of the question renders -- the judge's, the last debater's -- not the data set's prompt).
- evaluation prompts plus the evaluator's ``max_tokens``.

The limit is ``dataset.max_length`` when set, else ``model.context_length``. Two paths read data
past ``build``'s check and are checked where they load it, by the same rules: a benchmark suite's
own data sets (``check_benchmarks``, each benchmark's prompts plus its budget against the model's
context) and the prompts an off-policy teacher of another model samples on (``check_prompts``,
against the teacher's own context). ``dataset.overlong``
says what happens to a training example over it:

- ``drop`` (default, what trainers such as TRL do with over-long rows): the example is left out,
  counted, and the run warns once with the count and the longest length.
- ``truncate``: the reply is cut at its end (the right side) to fit; the prompt is never cut (an
  example whose prompt alone leaves no room is dropped). The datum is built from the cut reply, so
  the loss mask stays correct: weights cover the kept reply tokens and the end-of-turn token.
  Pairs cut both replies. Prompts that generate are never cut (that would change the question):
  they are dropped.
- ``error``: the run stops before step 1 with one line naming the count, the longest and the keys.

Held-out evaluation keeps its examples, so results stay comparable across runs and settings: an
evaluation prompt whose budget runs past the context is only counted (and warned about); one that
fills the context on its own cannot be run and is dropped. A generation budget that leaves no
room for any prompt is a ``ConfigError`` naming the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from tinkerx.conversation import check_template
from tinkerx.example import Example
from tinkerx.errors import ConfigError, DataError
from tinkerx.runs.display import console

REPLY, PAIR, GENERATE = "reply", "pair", "generate"


@dataclass(frozen=True)
class Need:
    """What one example of a split costs: its ``kind``, and for ``generate`` the budget and its key(s)."""

    kind: str
    budget: int = 0
    budget_key: str = ""
    evaluation: bool = False
    # The prompts a method renders for an example itself, when they are not the data set's prompt
    # (debate: the judge's and the last debater's); the longest is what the example costs.
    prompts: Callable[[Example], Sequence[list[dict[str, str]]]] | None = field(default=None, compare=False)


@dataclass
class SplitCount:
    checked: int = 0
    over: int = 0
    dropped: int = 0
    truncated: int = 0
    longest: int = 0


@dataclass
class LengthReport:
    limit: int
    limit_key: str
    rule: str
    splits: dict[str, SplitCount] = field(default_factory=dict)
    # Checks made beside build's (a benchmark, the teacher) log their own limit: one step-0 row must not overwrite another's.
    limit_metric: str = "data/token_limit"

    @property
    def over(self) -> int:
        return sum(c.over for c in self.splits.values())

    def metrics(self) -> dict[str, int]:
        """Step-0 metrics of the splits that had over-long examples."""
        out: dict[str, int] = {}
        for split, c in self.splits.items():
            if c.over:
                out.update({f"data/{split}_overlong": c.over, f"data/{split}_dropped": c.dropped,
                            f"data/{split}_truncated": c.truncated, f"data/{split}_longest": c.longest})  # fmt: skip
        return {self.limit_metric: self.limit, **out} if out else {}

    def summary(self) -> dict[str, Any]:
        return {"limit": self.limit, "limit_key": self.limit_key, "rule": self.rule,
                **{split: vars(c) for split, c in self.splits.items()}}  # fmt: skip

    def warning(self) -> str:
        """One line for the whole run."""
        parts = []
        for split, c in self.splits.items():
            if c.over:
                done = [f"{c.dropped} dropped"] * bool(c.dropped) + [f"{c.truncated} truncated"] * bool(c.truncated)
                parts.append(f"{c.over} of {c.checked} {split} (longest {c.longest}{': ' + ', '.join(done) if done else ': kept'})")
        return (f"examples longer than {self.limit_key}={self.limit} tokens: {'; '.join(parts)} "
                f"(dataset.overlong={self.rule}; drop | truncate | error)")  # fmt: skip


def token_limit(context_length: int | None, max_length: int | None) -> tuple[int, str] | None:
    """(limit, the key that set it); None when the model records no context length."""
    if max_length is not None:
        if context_length is not None and max_length > context_length:
            raise ConfigError(f"dataset.max_length={max_length} is beyond model.context_length={context_length}; lower it or set null")
        return max_length, "dataset.max_length"
    if context_length is None:
        return None
    return int(context_length), "model.context_length"


def needs_of(method: Any, sampling_max_tokens: int, evaluator: Any, components: dict[str, Any]) -> dict[str, Need]:
    """split -> what its examples cost, for the methods tinkerx ships (read from their options)."""
    name = getattr(method, "name", "")
    generate = Need(GENERATE, sampling_max_tokens, "sampling.max_tokens")
    needs: dict[str, Need] = {}
    if name == "sft":
        needs = {"train": Need(REPLY), "validation": Need(REPLY)}
    elif name == "dpo":
        if getattr(method, "pairs_from", "dataset") == "dataset":
            needs = {split: Need(PAIR) for split in ("train", "validation", "test")}
        else:
            needs = {"train": generate, "test": generate}
    elif name in ("grpo", "distill"):
        needs = {"train": generate, "validation": Need(REPLY)} if name == "distill" else {"train": generate}
    elif name == "debate":
        rounds = int(getattr(method, "rounds", 1))
        judge = components.get("judge")
        judge_tokens = int(getattr(judge, "max_tokens", 0) or 0)
        budget = 2 * rounds * sampling_max_tokens + judge_tokens
        key = f"sampling.max_tokens x 2 x method.rounds{' + components.judge.max_tokens' if judge_tokens else ''}"
        needs = {getattr(method, "split", "train"): Need(GENERATE, budget, key, prompts=getattr(method, "length_prompts", None))}
    if evaluator is not None and getattr(evaluator, "max_tokens", None):
        needs.setdefault(evaluator.split, Need(GENERATE, int(evaluator.max_tokens), "evaluator.max_tokens", evaluation=True))
    return needs


def check_budgets(needs: dict[str, Need], limit: int, limit_key: str) -> None:
    """A generation budget that leaves no room for a prompt is a setting no data can satisfy."""
    for need in needs.values():
        if need.kind == GENERATE and not need.evaluation and need.budget >= limit:
            raise ConfigError(f"{need.budget_key} = {need.budget} leaves no room for a prompt within {limit_key}={limit}: "
                              f"lower {need.budget_key.split(' ')[0]} (it defaults to dataset.max_tokens)")  # fmt: skip


def apply_length_rule(dataset: Any, tokenizer: Any, needs: dict[str, Need], limit: int, limit_key: str) -> LengthReport:
    """Counts, drops or cuts the over-long examples of ``dataset`` in place; see the module's docstring."""
    report = LengthReport(limit, limit_key, dataset.overlong)
    check_budgets(needs, limit, limit_key)
    if hasattr(dataset, "conversation"):  # conversations are rendered by the chat template: one line now, not a traceback later
        check_template(tokenizer)
        dataset.token_limit = limit  # conversations scored whole (held-out NLL) skip those past it
    for split, need in needs.items():
        if need.kind == PAIR and hasattr(dataset, "pairs"):
            pairs = dataset.pairs.get(split, [])
            kept, report.splits[split] = _pairs(dataset, tokenizer, pairs, limit, dataset.overlong)
            dataset.pairs[split] = kept
            setattr(dataset, split, [p.example for p in kept])
        elif need.kind != PAIR:
            examples = dataset.split(split)
            kept, report.splits[split] = _examples(dataset, tokenizer, examples, need, limit, dataset.overlong)
            setattr(dataset, split, kept)
    _refuse(report, needs, training=("train",))
    return report


def _refuse(report: LengthReport, needs: dict[str, Need], training: Sequence[str]) -> None:
    """DataError for ``dataset.overlong=error`` with any over-long example, and for a training split left empty."""
    for split, count in report.splits.items():
        need = needs[split]
        budget = f" with {need.budget_key}={need.budget}" if need.kind == GENERATE else ""
        if report.rule == "error" and count.over:
            raise DataError(f"{count.over} of {count.checked} {split} examples are longer than {report.limit_key}={report.limit} tokens{budget} "
                            f"(longest {count.longest}); dataset.overlong=drop leaves them out, =truncate cuts their replies")  # fmt: skip
        if split in training and count.checked and count.dropped == count.checked:
            raise DataError(f"every training example ({count.checked}) is longer than {report.limit_key}={report.limit} tokens{budget} "
                            f"(longest {count.longest}): choose a model with a longer context or shorter data")  # fmt: skip


def check_prompts(dataset: Any, tokenizer: Any, examples: list[Example], need: Need, limit: int, limit_key: str,
                  name: str) -> tuple[list[Example], LengthReport]:  # fmt: skip
    """``examples`` of ``dataset`` (not a split of it; nothing is changed in place) that fit ``limit`` by
    ``need``, under ``dataset.overlong``; the report names them ``name``. For a model other than the
    run's (an off-policy teacher): ``tokenizer`` is that model's."""
    report = LengthReport(limit, limit_key, dataset.overlong, limit_metric=f"data/{name}_token_limit")
    check_budgets({name: need}, limit, limit_key)
    kept, report.splits[name] = _examples(dataset, tokenizer, examples, need, limit, dataset.overlong)
    _refuse(report, {name: need}, training=() if need.evaluation else (name,))
    return kept, report


def check_benchmarks(benchmarks: Mapping[str, Any], tokenizer: Any, split: str, context_length: int | None) -> dict[str, LengthReport]:
    """Each benchmark's evaluation prompts (``split`` of its own data set) plus its generation budget
    (``max_tokens``), by the rule for evaluation prompts: counted, kept unless the prompt alone fills
    the context. The limit is the benchmark data set's ``max_length`` when set, else ``context_length``
    (the run's model's); a benchmark's data set is changed in place. Returns the reports of the
    benchmarks that were checked, keyed by benchmark."""
    reports = {}
    for name, bench in benchmarks.items():
        dataset = bench.dataset
        if not hasattr(dataset, "overlong"):
            continue
        where = f"suite.benchmarks.{name}.dataset"
        try:
            limit = token_limit(context_length, dataset.max_length)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        if limit is None:
            continue
        limit_key = limit[1] if limit[1] == "model.context_length" else f"{where}.max_length"
        need = Need(GENERATE, int(bench.max_tokens), f"{where}.max_tokens", evaluation=True)
        kept, report = check_prompts(dataset, tokenizer, dataset.split(split), need, limit[0], limit_key, name)
        setattr(dataset, split, kept)
        reports[name] = report
    return reports


def check_whole_file(bench: Any, original: Any, tokenizer: Any, split: str, max_tokens: int, context_length: int | None,
                     name: str) -> dict[str, LengthReport]:  # fmt: skip
    """``method=eval`` on a file with no test split of its own evaluates all of it (``bench.dataset``'s
    ``split``); ``build`` checked ``original``'s ``split`` only. The rest, by the rule for evaluation
    prompts plus ``evaluator.max_tokens``; ``bench.dataset`` is changed in place."""
    checked = {id(ex) for ex in original.split(split)}
    unchecked = [ex for ex in bench.dataset.split(split) if id(ex) not in checked]
    limit = token_limit(context_length, original.max_length) if hasattr(original, "overlong") and unchecked else None
    if limit is None:
        return {}
    kept, report = check_prompts(bench.dataset, tokenizer, unchecked, Need(GENERATE, max_tokens, "evaluator.max_tokens", evaluation=True), *limit, name)
    keep = checked | {id(ex) for ex in kept}
    setattr(bench.dataset, split, [ex for ex in bench.dataset.split(split) if id(ex) in keep])
    return {name: report}


def merged(reports: Mapping[str, LengthReport]) -> tuple[dict[str, Any], dict[str, Any], str] | None:
    """(step-0 metrics, summary entry, one warning line) of the reports with over-long examples; None when none has."""
    over = {name: r for name, r in reports.items() if r.over}
    if not over:
        return None
    metrics = {k: v for r in over.values() for k, v in r.metrics().items()}
    first = next(iter(over.values()))
    if all((r.limit, r.limit_key, r.rule) == (first.limit, first.limit_key, first.rule) for r in over.values()):
        # One limit for all (the usual case): one sentence naming it once.
        together = LengthReport(first.limit, first.limit_key, first.rule, {s: c for r in over.values() for s, c in r.splits.items()})
        warning = together.warning()
    else:
        warning = "; ".join(r.warning() for r in over.values())
    return metrics, {name: r.summary() for name, r in over.items()}, warning


def count_tokens(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Token counts of ``texts`` in one batched call (``verbose=False``: no 'longer than the maximum' log per text)."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]]


def prompt_lengths(dataset: Any, tokenizer: Any, examples: Sequence[Example]) -> list[int]:
    """What ``tinkerx.chat.prompt_tokens`` gives each example, counted in one batch."""
    texts = [tokenizer.apply_chat_template(list(dataset.messages(ex)), add_generation_prompt=True, tokenize=False) for ex in examples]
    return count_tokens(tokenizer, texts)


def rendered_lengths(tokenizer: Any, examples: Sequence[Example], render: Callable[[Example], Sequence[list[dict[str, str]]]]) -> list[int]:
    """Each example's longest prompt of those ``render`` gives it (each as its generation prompt), counted in one
    batch; 0 for an example it renders nothing for (the method refuses that example itself, in its own words)."""
    rendered = [render(ex) for ex in examples]
    texts = [tokenizer.apply_chat_template(list(m), add_generation_prompt=True, tokenize=False) for ms in rendered for m in ms]
    counts = iter(count_tokens(tokenizer, texts))
    return [max((next(counts) for _ in ms), default=0) for ms in rendered]


def reply_lengths(tokenizer: Any, replies: Sequence[str]) -> list[int]:
    """What ``tinkerx.chat.completion_tokens`` gives each reply: its tokens and the end-of-turn token."""
    return [n + 1 for n in count_tokens(tokenizer, replies)]


def cut_reply(tokenizer: Any, text: str, room: int) -> str | None:
    """``text`` cut at its end so that it and the end-of-turn token take at most ``room`` tokens
    (None when nothing fits). Decoding and encoding again can merge tokens differently, so the cut
    is measured again until it fits."""
    ids = tokenizer.encode(text, add_special_tokens=False, verbose=False)
    keep = min(len(ids), room - 1)
    while keep > 0:
        cut = tokenizer.decode(ids[:keep], skip_special_tokens=False)
        over = reply_lengths(tokenizer, [cut])[0] - room
        if over <= 0:
            return cut
        keep -= over
    return None


def _examples(dataset: Any, tokenizer: Any, examples: list[Example], need: Need, limit: int, rule: str) -> tuple[list[Example], SplitCount]:
    if need.kind == REPLY and hasattr(dataset, "check_lengths"):  # conversations: whole turns (tinkerx/data/chat.py)
        return dataset.check_lengths(tokenizer, examples, limit, rule, SplitCount(checked=len(examples)))
    count = SplitCount(checked=len(examples))
    prompts = prompt_lengths(dataset, tokenizer, examples) if need.prompts is None else rendered_lengths(tokenizer, examples, need.prompts)
    replies = reply_lengths(tokenizer, [dataset.completion(ex) for ex in examples]) if need.kind == REPLY else [need.budget] * len(examples)
    kept = []
    for ex, prompt, reply in zip(examples, prompts, replies):
        if prompt + reply <= limit:
            kept.append(ex)
            continue
        count.over += 1
        count.longest = max(count.longest, prompt + reply)
        if need.evaluation:
            if prompt < limit:  # the budget is cut short by the context, but the example runs
                kept.append(ex)
            else:
                count.dropped += 1
            continue
        cut = cut_reply(tokenizer, dataset.completion(ex), limit - prompt) if rule == "truncate" and need.kind == REPLY else None
        if cut is None:
            count.dropped += 1
            continue
        dataset.truncated[ex] = cut
        count.truncated += 1
        kept.append(ex)
    return kept, count


def _pairs(dataset: Any, tokenizer: Any, pairs: list[Any], limit: int, rule: str) -> tuple[list[Any], SplitCount]:
    from tinkerx.data.preference import PreferencePair

    count = SplitCount(checked=len(pairs))
    prompts = prompt_lengths(dataset, tokenizer, [p.example for p in pairs])
    chosen = reply_lengths(tokenizer, [p.chosen for p in pairs])
    rejected = reply_lengths(tokenizer, [p.rejected for p in pairs])
    kept = []
    for pair, prompt, c, r in zip(pairs, prompts, chosen, rejected):
        longest = prompt + max(c, r)
        if longest <= limit:
            kept.append(pair)
            continue
        count.over += 1
        count.longest = max(count.longest, longest)
        if rule == "truncate":
            cut_c = cut_reply(tokenizer, pair.chosen, limit - prompt)
            cut_r = cut_reply(tokenizer, pair.rejected, limit - prompt)
            if cut_c is not None and cut_r is not None:
                kept.append(PreferencePair(pair.example, cut_c, cut_r))
                count.truncated += 1
                continue
        count.dropped += 1
    return kept, count


def record(recorder: Any, reports: Mapping[str, LengthReport], summary_key: str, log: bool = True) -> None:
    """Warns once, logs the counts at step 0 (unless ``log`` is false: a resumed run has its step-0
    line) and adds them to ``summary.json`` under ``summary_key`` (for checks made in a method's
    setup, after ``build`` logged its own)."""
    found = merged(reports)
    if found is None:
        return
    metrics, summary, warning = found
    console.print(f"[yellow]warning:[/yellow] {warning}")
    recorder.summary_additions[summary_key] = summary
    if log:
        recorder.log_metrics(0, metrics)

"""``method=eval``: benchmark a base model or a checkpoint on a suite, and compare with a baseline.

Writes per benchmark ``eval/NAME.jsonl`` (one record per example and sample), and ``results.json``
(metrics plus per-example correctness) that a later run can name with ``compare=PATH``; with it,
``comparison.json`` holds each metric's change, the examples that flipped, and a paired bootstrap
confidence interval for the change in accuracy.

Without a suite it evaluates the run's own data set: its test split, or, when the source has no
test split of its own (a single JSON-lines file), the whole file; the run says which.

A method like the others, with no steps: ``setup`` checks everything and opens the sampling client,
``finish`` evaluates and returns the summary.
"""

from __future__ import annotations

import copy
from typing import Any

from rich.table import Table

from tinkerx.data.lengths import check_benchmarks, check_whole_file, record
from tinkerx.errors import ConfigError, UserError
from tinkerx.eval.compare import compare_results, example_key, load_results, results_entry, tag_comparison_table
from tinkerx.eval.partial_credit import partial_credit
from tinkerx.eval.pass_at_k import per_problem
from tinkerx.eval.suite import LoadedBenchmark
from tinkerx.methods.shared.policy import base_sampler, evaluate_sampler, policy_sampler, resolved
from tinkerx.pipeline import Pipeline, ResumeState
from tinkerx.runs.checkpoints import checkpoint_base_model, load_weights, resolve_checkpoint
from tinkerx.runs.display import console, show


class Evaluate:
    name = "eval"
    trains = False  # so it can run on a backend that only samples (an HTTP endpoint)
    shown: tuple[str, ...] = ()
    total_steps = 0  # nothing to train: the evaluation is the run's finish
    step_index = 0

    def __init__(
        self,
        checkpoint: str | None = None,
        compare: str | None = None,
        bootstrap_samples: int = 2000,
        confidence: float = 0.95,
        seed: int = 0,
    ) -> None:
        if bootstrap_samples < 1:
            raise ConfigError(f"method.bootstrap_samples must be >= 1, got {bootstrap_samples}")
        if not 0 < confidence < 1:
            raise ConfigError(f"method.confidence must be in (0, 1), got {confidence}")
        self.checkpoint = resolve_checkpoint(checkpoint, "method.checkpoint") if checkpoint else None
        # Read now, at build time: a wrong path costs nothing.
        self.baseline = load_results(compare) if compare else None
        self.bootstrap_samples, self.confidence, self.seed = bootstrap_samples, confidence, seed

    def setup(self, p: Pipeline, resume: ResumeState | None = None) -> None:
        """Everything checked and the sampling client open before any example is sampled."""
        if p.evaluator is None:
            raise ConfigError("method=eval needs an evaluator (evaluator=default)")
        self.p = p
        self.suite = p.components.get("suite")
        if self.suite is not None and self.suite.benchmarks:
            self.benchmarks = self.suite.load()
            # A suite's data sets are read here, past build's length check: the same rule for evaluation prompts.
            record(p.recorder, check_benchmarks(self.benchmarks, p.tokenizer, p.evaluator.split, self.suite.context_length), "overlong_benchmarks")
        else:
            self.benchmarks = self._run_dataset(p)
            bench = self.benchmarks[p.dataset.name]
            if bench.whole_file:  # build checked the test split; the whole file adds train and validation
                context = self.suite.context_length if self.suite is not None else None
                record(p.recorder, check_whole_file(bench, p.dataset, p.tokenizer, p.evaluator.split, bench.max_tokens, context, p.dataset.name), "overlong_whole_file")
        self._check(p, self.benchmarks)
        self.sampler = self._sampling_client(p)
        self._summary: dict[str, Any] = {}

    def start(self) -> dict[str, Any] | None:
        return None

    def step(self) -> dict[str, Any]:
        raise UserError("method=eval has no training steps (total_steps is 0): finish() evaluates")

    def finish(self) -> dict[str, Any]:
        """Evaluates every benchmark: ``eval/NAME.jsonl``, ``results.json`` and, with a baseline, ``comparison.json``."""
        p, suite = self.p, self.suite
        results: dict[str, Any] = {}
        for name, bench in self.benchmarks.items():
            if bench.reward is None:  # conversations: held-out NLL and the sampled replies, nothing to grade
                result = _evaluator_for(p, bench)(self.sampler)
                p.recorder.write_jsonl(f"eval/{name}.jsonl", result.records)
                results[name] = {"metrics": result.metrics, "correct": {}, "evaluated": _describe(p, bench)}
                continue
            records = self._evaluate(p, self.sampler, bench)
            p.recorder.write_jsonl(f"eval/{name}.jsonl", records)
            ids = [r.get("id") for r in records]
            if None not in ids and len(set(ids)) < len(ids):  # several samples a problem: one row each, with pass@1
                p.recorder.write_jsonl(f"eval/{name}_problems.jsonl", per_problem(records))
            # Failed requests stay in the jsonl but are not paired: they say nothing about the model.
            results[name] = {**results_entry(_metrics(records), [r for r in records if not r.get("error")]), "evaluated": _describe(p, bench)}
        current = {"model": p.base_model, "checkpoint": self.checkpoint, "suite": getattr(suite, "name", "dataset"), "run_dir": str(p.run_dir), "benchmarks": results}
        summary: dict[str, Any] = {"results": str(p.recorder.write_json("results.json", current)), "final": _headline(results)}
        if self.baseline is not None:
            comparison = compare_results(self.baseline, current, self.bootstrap_samples, self.confidence, self.seed)
            summary["comparison"] = str(p.recorder.write_json("comparison.json", comparison))
            summary["baseline"] = _headline({n: self.baseline["benchmarks"][n] for n in comparison["benchmarks"]})
            show(_comparison_table(comparison))
            by_tag = tag_comparison_table(comparison)  # evaluator.group_by: the same comparison per tag value
            if by_tag is not None:
                show(by_tag)
        self._summary = summary
        return summary

    def summary(self) -> dict[str, Any]:
        return dict(self._summary)

    def state(self) -> dict[str, Any]:
        return {"step_index": 0}

    def evaluate(self, name: str) -> dict[str, Any]:
        """The run's evaluator on the evaluated weights (``eval/<name>.jsonl``), as for any method."""
        return evaluate_sampler(self.p, self.sampler, name)

    def sampling_client(self) -> Any:
        return self.sampler

    def save(self, name: str) -> dict[str, str]:
        return {}  # nothing is trained, so nothing new to save

    def load(self, path: str, with_optimizer: bool = False) -> None:
        raise UserError("method=eval trains nothing to load into: name the weights to evaluate with method.checkpoint=PATH")

    def saved_checkpoints(self) -> list[dict[str, Any]]:
        return []

    # ---- parts -----------------------------------------------------------------------------
    @staticmethod
    def _run_dataset(p: Pipeline) -> dict[str, LoadedBenchmark]:
        conversations = hasattr(p.dataset, "conversation")  # dataset=chat: scored by NLL, its replies kept, not graded
        if p.reward is None and not conversations:
            raise ConfigError("method=eval on the run's data set grades with the run's reward: choose one with reward=NAME")
        dataset, whole_file = p.dataset, None
        if p.evaluator.split == "test" and p.dataset.test_carved_from:
            # Nothing is trained here, so nothing needs holding out: the test split is the whole file.
            dataset, whole_file = copy.copy(p.dataset), p.dataset.test_carved_from
            dataset.test = [*p.dataset.train, *p.dataset.validation, *p.dataset.test]
        reward = None if conversations else p.reward
        return {p.dataset.name: LoadedBenchmark(dataset, reward, p.evaluator.max_examples, p.evaluator.max_tokens, whole_file)}

    def _check(self, p: Pipeline, benchmarks: dict[str, LoadedBenchmark]) -> None:
        trained_from = checkpoint_base_model(self.checkpoint) if self.checkpoint else None
        if trained_from and trained_from != p.base_model:
            raise ConfigError(f"method.checkpoint was trained from {trained_from}, but model is {p.base_model}; choose the matching model=")
        if self.baseline is not None and not set(benchmarks) & set(self.baseline["benchmarks"]):
            raise ConfigError(
                f"compare: the baseline has none of this run's benchmarks ({', '.join(benchmarks)}); "
                f"it has {', '.join(self.baseline['benchmarks']) or 'none'}"
            )
        for name, bench in benchmarks.items():
            console.print(f"eval {name}: {_describe(p, bench)}")
            if self.baseline is not None and bench.reward is None:
                raise ConfigError(f"compare: {name} is not graded (conversations: nll and replies), so there is no per-example accuracy to pair; "
                                  "compare the nll in the two runs' results.json")  # fmt: skip
            if self.baseline is not None and name in self.baseline["benchmarks"]:
                _check_pairs(name, _evaluator_for(p, bench), self.baseline["benchmarks"][name])

    def _sampling_client(self, p: Pipeline) -> Any:
        if self.checkpoint is None:
            return base_sampler(p)
        if "sampler_weights" in self.checkpoint:  # weights saved for sampling: no trainer needed
            return resolved(p.service.create_sampling_client(model_path=self.checkpoint))
        # A training state (what save_state writes, e.g. an SFT or GRPO run's final checkpoint).
        return policy_sampler(load_weights(p.service, self.checkpoint, "method.checkpoint"))

    @staticmethod
    def _evaluate(p: Pipeline, sampler: Any, bench: LoadedBenchmark) -> list[dict[str, Any]]:
        records = _evaluator_for(p, bench)(sampler).records
        for r in records:
            r["partial_credit"] = partial_credit(r["completion"], r["answer"], r["correct"])
        return records


def _evaluator_for(p: Pipeline, bench: LoadedBenchmark) -> Any:
    """The run's evaluator settings (split, samples, temperature) on this benchmark, with its budget."""
    evaluator = copy.copy(p.evaluator)
    evaluator.dataset, evaluator.reward = bench.dataset, bench.reward
    evaluator.max_examples, evaluator.max_tokens = bench.max_examples, bench.max_tokens
    return evaluator


def _describe(p: Pipeline, bench: LoadedBenchmark) -> str:
    """What is evaluated, in words: which examples of which source, how many, with what budget."""
    split = p.evaluator.split
    available = len(bench.dataset.split(split))
    if bench.whole_file:
        what = f"the whole of {bench.whole_file} ({available} examples; it has no test split of its own)"
    else:
        what = f"the {split} split ({available} examples)"
    n = min(available, bench.max_examples or available)
    cap = f", the first {n} (evaluator.max_examples={bench.max_examples}; null for all)" if n < available else ""
    return f"{what}{cap}, max_tokens {bench.max_tokens}"


def _check_pairs(name: str, evaluator: Any, baseline: dict[str, Any]) -> None:
    """ConfigError, before any sampling, when no example of this run pairs with one of the baseline's."""
    keys = [example_key({"id": ex.id, "sample": s}) for ex in evaluator.examples() for s in range(evaluator.num_samples)]
    theirs = baseline.get("correct") or {}
    if keys and not set(keys) & set(theirs):
        example = next(iter(theirs), "none")
        raise ConfigError(
            f"compare: {name}: none of this run's {len(keys)} examples is in the baseline (ids like {keys[0]!r} here, "
            f"{example!r} there); compare evaluations of the same data, split and evaluator settings"
        )


def _metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    from tinkerx.eval.evaluator import summarize

    graded = [r for r in records if not r.get("error")]
    return {**summarize(records), "partial_credit": sum(r["partial_credit"] for r in graded) / max(1, len(graded))}


def _headline(results: dict[str, Any]) -> dict[str, float]:
    """One benchmark: its metrics. Several: each as ``NAME/metric``, and ``accuracy`` averaged over them."""
    if len(results) == 1:
        return dict(next(iter(results.values()))["metrics"])
    flat = {f"{name}/{m}": v for name, r in results.items() for m, v in r["metrics"].items()}
    flat["accuracy"] = sum(r["metrics"]["accuracy"] for r in results.values()) / len(results)
    return flat


def _comparison_table(comparison: dict[str, Any]) -> Table:
    table = Table(title="accuracy vs baseline, paired by example (* = CI excludes 0)")
    ci = f"{comparison['confidence']:.0%} CI"
    for column in ("benchmark", "n", "baseline", "now", "change", ci, "up", "down"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for name, c in comparison["benchmarks"].items():
        low, high = c["accuracy_change_ci"]
        accuracy = c["metrics"].get("accuracy", {})
        table.add_row(
            name, str(c["paired_examples"]), f"{accuracy.get('baseline', float('nan')):.3f}", f"{accuracy.get('current', float('nan')):.3f}",
            f"{c['accuracy_change']:+.3f}" + (" *" if c["significant"] else ""), f"[{low:+.3f}, {high:+.3f}]",
            str(len(c["improvements"])), str(len(c["regressions"])),
        )
    return table

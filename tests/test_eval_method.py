"""method=eval: suites, partial credit, results files, and comparison with a paired bootstrap CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate

from tests.conftest import compose
from tests.helpers.checkpoints import tiny_checkpoint
from tinkerx.errors import ConfigError
from tinkerx.eval.compare import compare_benchmark, load_results, paired_bootstrap
from tinkerx.eval.partial_credit import digit_credit, partial_credit, token_f1
from tinkerx.methods.eval import Evaluate


# --- partial credit ---------------------------------------------------------------------------------


def test_digit_credit_counts_place_aligned_digits():
    assert digit_credit(47, 47) == 1.0
    assert digit_credit(57, 47) == 0.5
    assert digit_credit(19, 119) == pytest.approx(2 / 3)  # units and tens right, hundreds missing
    assert digit_credit(-47, 47) == 0.0


def test_partial_credit():
    assert partial_credit("12+35=47", "47") == 1.0
    assert partial_credit("The answer is 57.", "47") == 0.5
    assert partial_credit("no number here", "47") == 0.0
    assert partial_credit("anything", "\\frac{14}{3}", correct=True) == 1.0  # the reward's verdict wins
    assert partial_credit("so \\boxed{\\frac{14}{5}}", "\\frac{14}{3}") == pytest.approx(token_f1("\\frac{14}{5}", "\\frac{14}{3}"))
    assert 0 < partial_credit("so \\boxed{\\frac{14}{5}}", "\\frac{14}{3}") < 1
    assert partial_credit("I think\nAnswer: B", "B") == pytest.approx(0.5)  # tokens answer : b vs b
    assert token_f1("B", "b") == 1.0


# --- bootstrap and comparison --------------------------------------------------------------------


def test_paired_bootstrap_edges_and_determinism():
    assert paired_bootstrap([1, 0, 1], [1, 0, 1], 500, 0.95, 0) == (0.0, 0.0, 0.0)
    assert paired_bootstrap([0] * 20, [1] * 20, 500, 0.95, 0) == (1.0, 1.0, 1.0)
    base, current = [0, 1, 0, 1, 0, 0, 1, 0] * 10, [1, 1, 0, 1, 1, 0, 1, 0] * 10
    change, low, high = paired_bootstrap(base, current, 2000, 0.95, 0)
    assert change == pytest.approx(0.25)
    assert 0 < low < change < high < 0.5
    assert paired_bootstrap(base, current, 2000, 0.95, 0) == (change, low, high)


def test_compare_benchmark_lists_flips_and_metric_changes():
    base = {"metrics": {"accuracy": 0.5, "partial_credit": 0.6}, "correct": {"a#0": 1, "b#0": 0, "c#0": 0, "d#0": 1}}
    current = {"metrics": {"accuracy": 0.5, "partial_credit": 0.7, "new_metric": 1.0}, "correct": {"a#0": 0, "b#0": 1, "c#0": 0, "d#0": 1}}
    c = compare_benchmark(base, current, 200, 0.95, 0)
    assert c["improvements"] == ["b#0"] and c["regressions"] == ["a#0"]
    assert c["metrics"]["partial_credit"]["change"] == pytest.approx(0.1)
    assert "new_metric" not in c["metrics"]
    assert c["paired_examples"] == 4 and c["accuracy_change"] == 0.0
    assert not c["significant"]


def test_load_results_errors(tmp_path):
    with pytest.raises(ConfigError, match="no results file"):
        load_results(str(tmp_path / "nothing"))
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_results(str(tmp_path))
    (tmp_path / "results.json").write_text('{"metrics": {}}')
    with pytest.raises(ConfigError, match="not a method=eval results file"):
        load_results(str(tmp_path))


def test_evaluate_rejects_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="confidence"):
        Evaluate(confidence=1.5)
    with pytest.raises(ConfigError, match="no checkpoint"):
        Evaluate(checkpoint=str(tmp_path / "missing"))


# --- suites -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite, sizes", [("quick", {"gsm8k": 50, "math500": 50}), ("standard", {"gsm8k": None}),
                                          ("comprehensive", {"gsm8k": None, "math500": None}), ("dataset", {})])
def test_suites_compose(suite, sizes):
    cfg = compose(["method=eval", f"suite={suite}"])
    s = instantiate(cfg.components.suite)
    assert s.name == suite
    assert {name: b.max_examples for name, b in s.benchmarks.items()} == sizes
    assert isinstance(instantiate(cfg.method), Evaluate)


def test_quick_suite_loads_local_files(shared_data):
    cfg = compose(["method=eval", "suite=quick", f"suite.data_dir={shared_data}"])
    loaded = instantiate(cfg.components.suite).load()
    assert len(loaded["gsm8k"].dataset.test) == 1319 and len(loaded["math500"].dataset.test) == 500
    assert loaded["gsm8k"].max_examples == 50
    # Each benchmark is sampled with its own data set's budget, not the run's (arithmetic's 16).
    assert (loaded["gsm8k"].max_tokens, loaded["math500"].max_tokens) == (1024, 2048)


def test_eval_uses_a_suite_only_when_asked():
    assert compose(["method=eval"]).components.suite.name == "dataset"
    assert compose(["method=eval", "suite=quick"]).components.suite.name == "quick"


# --- end to end ---------------------------------------------------------------------------------

TINY = ["method=eval", "suite=dataset", "evaluator.max_examples=12", "sampling.max_tokens=4"]


def _run(overrides: list[str], run_dir: Path) -> dict:
    from tinkerx.app import run

    return run(compose(overrides), run_dir)


def test_eval_checkpoint_then_compare_with_base(tmp_path):
    # A checkpoint one optimizer step away from the base model.
    checkpoint = tiny_checkpoint(tmp_path / "ckpt", [1, 2, 3], [4, 5], steps=1, lr=1e-2)

    first = _run([*TINY, f"method.checkpoint={checkpoint}"], tmp_path / "a")
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["checkpoint"] == checkpoint and set(results["benchmarks"]) == {"arithmetic"}
    assert len(results["benchmarks"]["arithmetic"]["correct"]) == 12
    records = [json.loads(line) for line in (tmp_path / "a" / "eval" / "arithmetic.jsonl").read_text().splitlines()]
    assert len(records) == 12 and all(0 <= r["partial_credit"] <= 1 for r in records)
    for key in ("accuracy", "exact_match", "numeric_match", "partial_credit"):
        assert key in first["final"]

    second = _run([*TINY, f"compare={tmp_path / 'a'}", "method.bootstrap_samples=300"], tmp_path / "b")
    comparison = json.loads((tmp_path / "b" / "comparison.json").read_text())
    bench = comparison["benchmarks"]["arithmetic"]
    assert bench["paired_examples"] == 12
    low, high = bench["accuracy_change_ci"]
    assert low <= bench["accuracy_change"] <= high
    assert bench["metrics"]["accuracy"]["change"] == pytest.approx(second["final"]["accuracy"] - first["final"]["accuracy"])
    assert second["baseline"]["accuracy"] == first["final"]["accuracy"]


def test_compare_with_unrelated_benchmarks_fails_before_sampling(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"benchmarks": {"gsm8k": {"metrics": {}, "correct": {}}}}))
    with pytest.raises(ConfigError, match="none of this run's benchmarks"):
        _run([*TINY, f"compare={tmp_path}"], tmp_path / "run")


def test_numeric_match_is_false_for_non_numeric_ground_truths():
    from tinkerx.eval.evaluator import Evaluator

    evaluator = Evaluator(dataset=None, tokenizer=None, reward=None)
    assert evaluator._numeric_match("so the answer is p - q", "p - q") is False  # MATH-500 has such answers
    assert evaluator._numeric_match("#### 1,000", "1000") is True


def test_compare_benchmark_refuses_when_no_example_pairs():
    base = {"metrics": {"accuracy": 1.0}, "correct": {"a#0": 1}}
    with pytest.raises(ConfigError, match="example ids do not match"):
        compare_benchmark(base, {"metrics": {"accuracy": 0.0}, "correct": {"b#0": 0}}, 10, 0.95, 0)


def test_compare_with_other_example_ids_fails_before_sampling(tmp_path):
    other = {"benchmarks": {"arithmetic": {"metrics": {"accuracy": 0.5}, "correct": {"7+8=#0": 1, "1+2=#0": 0}}}}
    (tmp_path / "results.json").write_text(json.dumps(other))
    with pytest.raises(ConfigError, match=r"none of this run's 12 examples is in the baseline") as error:
        _run([*TINY, f"compare={tmp_path}"], tmp_path / "run")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run" / "eval").exists()  # refused before any sampling


# A jsonl file without a test split; two answers a numeric reward cannot grade.
QA = [{"question": f"{a}+{b}=", "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (9, 1), (2, 2), (4, 4), (6, 1), (8, 8), (3, 3)]]
QA += [{"question": "name it", "answer": "blue"}, {"question": "and this", "answer": "p - q"}]


def test_eval_on_a_file_without_a_test_split_evaluates_all_of_it_and_counts_ungradable(tmp_path, caplog):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in QA))
    with caplog.at_level("WARNING"):
        summary = _run(["method=eval", "dataset=jsonl", f"dataset.path={path}", "sampling.max_tokens=4"], tmp_path / "run")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    entry = results["benchmarks"]["jsonl"]
    assert len(entry["correct"]) == len(QA)  # the whole file, not its carved quarter
    assert f"the whole of {path} ({len(QA)} examples; it has no test split of its own)" in entry["evaluated"]
    assert entry["metrics"]["ungradable"] == summary["final"]["ungradable"] == 2
    assert "2 of 12 answers cannot be graded by reward numeric" in caplog.text
    records = [json.loads(line) for line in (tmp_path / "run" / "eval" / "jsonl.jsonl").read_text().splitlines()]
    assert sorted(r["answer"] for r in records if r["ungradable"]) == ["blue", "p - q"]
    assert not any(r["correct"] for r in records if r["ungradable"])


def test_eval_on_a_test_split_says_how_many_it_takes(tmp_path):
    _run(TINY, tmp_path / "run")
    entry = json.loads((tmp_path / "run" / "results.json").read_text())["benchmarks"]["arithmetic"]
    assert entry["evaluated"] == "the test split (200 examples), the first 12 (evaluator.max_examples=12; null for all), max_tokens 4"


def test_sampled_evaluation_gives_every_example_its_own_seed(tmp_path, monkeypatch):
    """evaluator.seed is spread into one seed per example (tinkerx.sampler.prompt_seeds): one seed for
    all would have every example draw the same random numbers, its samples moving with every other
    example's; the baseline and final evaluations still draw the same numbers for the same example."""
    from tinkerx.app import run
    from tinkerx.backends.local.clients import LocalSamplingClient
    from tinkerx.sampler import prompt_seeds

    seen: list[list[int] | None] = []
    original = LocalSamplingClient.sample_many

    def recording(self, prompts, num_samples, params, seeds=None):
        seen.append(seeds)
        return original(self, prompts, num_samples, params, seeds)

    monkeypatch.setattr(LocalSamplingClient, "sample_many", recording)
    run(compose(["method=eval", "evaluator.max_examples=5", "evaluator.num_samples=3", "evaluator.temperature=1.0", "evaluator.seed=11",
                 "sampling.max_tokens=6"]), tmp_path / "run")  # fmt: skip
    assert prompt_seeds(11, 5) in seen and len(set(prompt_seeds(11, 5))) == 5

"""Results by tag: per-tag metrics in an evaluation, per-tag pairs in a comparison and columns in a
sweep summary, a one-line refusal of a field the data lacks, and tagging a data set with a judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinkerx.errors import ConfigError
from tinkerx.eval.compare import compare_benchmark, results_entry, tag_comparison_table
from tinkerx.eval.tags import tag_metrics
from tinkerx.example import Example, TagList, record_fields


def _record(i: int, correct: bool, **tags) -> dict:
    return {"id": f"q{i}", "sample": 0, "correct": correct, "tags": {k: v if isinstance(v, list) else [v] for k, v in tags.items()}}


def test_tag_metrics_count_each_value_and_each_item_of_a_list():
    records = [
        _record(0, True, level="1", topics=["algebra", "geometry"]),
        _record(1, False, level="1", topics=["algebra"]),
        _record(2, True, level="10", topics=[]),
        {**_record(3, True, level="2"), "error": "HTTP 500"},  # a failed request says nothing about the model
    ]
    metrics = tag_metrics(records)
    assert metrics["tag/level=1/accuracy"] == 0.5 and metrics["tag/level=1/n"] == 2
    assert metrics["tag/topics=algebra/accuracy"] == 0.5 and metrics["tag/topics=geometry/n"] == 1
    assert "tag/level=2/n" not in metrics
    levels = [k for k in metrics if k.startswith("tag/level=") and k.endswith("/n")]
    assert levels == ["tag/level=1/n", "tag/level=10/n"]  # numbers in numeric order


def test_list_fields_keep_their_items_and_read_as_text_in_prompts():
    fields = record_fields({"level": 3, "topic_tags": ["algebra", "word problems"], "nested": [[1]]})
    assert fields["level"] == "3" and isinstance(fields["topic_tags"], TagList) and "nested" not in fields
    assert fields["topic_tags"].items == ("algebra", "word problems") and "{topic_tags}".format(**fields) == "algebra, word problems"


def test_a_comparison_pairs_examples_within_each_tag():
    records = [_record(i, True, level=str(1 + i % 2)) for i in range(8)]
    base = results_entry({"accuracy": 1.0}, records)
    flipped = [{**r, "correct": r["tags"]["level"] != ["2"]} for r in records]  # level 2 regresses, level 1 stays
    current = results_entry({"accuracy": 0.5}, flipped)
    result = compare_benchmark(base, current, samples=200, confidence=0.95, seed=0)
    level1, level2 = result["by_tag"]["level"]["1"], result["by_tag"]["level"]["2"]
    assert level1["paired_examples"] == 4 and level1["accuracy_change"] == 0.0 and not level1["regressions"]
    assert level2["accuracy_change"] == -1.0 and level2["significant"] and sorted(level2["regressions"]) == ["q1#0", "q3#0", "q5#0", "q7#0"]
    assert level2["baseline_accuracy"] == 1.0 and level2["accuracy"] == 0.0
    table = tag_comparison_table({"confidence": 0.95, "benchmarks": {"bench": result}})
    assert table is not None and table.row_count == 2
    assert tag_comparison_table({"confidence": 0.95, "benchmarks": {"bench": compare_benchmark(
        results_entry({}, [{"id": "a", "correct": True}]), results_entry({}, [{"id": "a", "correct": False}]), 10, 0.9, 0)}}) is None


def test_the_sweep_summary_has_per_tag_and_spend_columns(tmp_path):
    from omegaconf import OmegaConf

    from tinkerx.runs.sweep_summary import columns, trial_row

    trial = tmp_path / "0"
    (trial / ".hydra").mkdir(parents=True)
    (trial / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(["optim.lr=0.1"]))
    summary = {"status": "budget_reached", "final": {"accuracy": 0.5, "tag/level=1/accuracy": 0.75},
               "usage": {"total_tokens": 1234, "cost_usd": None}, "wall_time_s": 1.0}  # fmt: skip
    (trial / "summary.json").write_text(json.dumps(summary))
    row = trial_row(trial)
    assert row["status"] == "budget_reached" and row["final/tag/level=1/accuracy"] == 0.75
    assert row["tokens"] == 1234 and row["cost_usd"] == "unknown"  # never 0 when the prices give none
    assert columns([row])[-4:] == ["tokens", "cost_usd", "wall_time_s", "run_dir"]


# ---- on real data and the tiny model -------------------------------------------------------------
def test_a_group_by_field_the_data_lacks_is_one_line_before_any_step(shared_data, tmp_path):
    from tests.helpers.runs import run_in_process

    run = tmp_path / "run"
    with pytest.raises(ConfigError) as error:
        run_in_process(["method=eval", "dataset=math", f"dataset.test_path={shared_data}/math500/test.jsonl", "reward=exact_match",
                        "evaluator.group_by=[subjects]"], run)  # fmt: skip
    message = str(error.value)
    assert "\n" not in message and "'subjects'" in message and "level, problem, solution, subject, unique_id" in message
    assert not (run / "metrics.jsonl").exists() and not (run / "eval").exists()


def test_an_evaluation_on_tagged_data_reports_each_tag_and_compares_by_tag(tmp_path):
    from tests.helpers.runs import run_in_process

    data = tmp_path / "tagged.jsonl"
    rows = [{"question": f"{a}+{b}=", "answer": str(a + b), "level": 1 + (a % 3), "topics": ["sums"] + (["big"] if a > 5 else [])}
            for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (2, 2), (9, 1)]]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["method=eval", "model=tiny", "dataset=jsonl", f"dataset.path={data}", "reward=numeric", "sampling.max_tokens=4",
              "evaluator.group_by=[level,topics]"]  # fmt: skip
    first = run_in_process(common, tmp_path / "first")
    records = [json.loads(line) for line in (tmp_path / "first" / "eval" / "jsonl.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(set(r["tags"]) == {"level", "topics"} for r in records)
    final = first["final"]
    assert final["tag/topics=sums/n"] == 6 and final["tag/topics=big/n"] == 2
    assert sum(final[f"tag/level={v}/n"] for v in (1, 2, 3)) == 6
    assert final["tag/level=1/accuracy"] == sum(r["correct"] for r in records if r["tags"]["level"] == ["1"]) / final["tag/level=1/n"]

    second = run_in_process([*common, f"compare={tmp_path / 'first'}"], tmp_path / "second")
    comparison = json.loads(Path(second["comparison"]).read_text())["benchmarks"]["jsonl"]
    assert comparison["by_tag"]["topics"]["big"]["paired_examples"] == 2 and comparison["by_tag"]["level"]["2"]["accuracy_change"] == 0.0


def test_tagging_a_data_set_with_the_tiny_judge(tmp_path, capsys):
    from tinkerx.tag.__main__ import main

    source = tmp_path / "in.jsonl"
    rows = [{"question": "What is 2+3?", "id": 1}, {"question": "Name the capital of France.", "id": 2, "level": 4}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text("- arithmetic\n- geography\n- algebra\n")
    out = tmp_path / "out.jsonl"
    assert main([str(source), "--taxonomy", str(taxonomy), "--field", "topic", "--out", str(out), "model=tiny"]) == 0
    tagged = [json.loads(line) for line in out.read_text().splitlines()]
    assert [{k: v for k, v in t.items() if not k.startswith("topic")} for t in tagged] == rows  # the records themselves unchanged
    for t in tagged:
        assert t["topic"] in ("arithmetic", "geography", "algebra") and t["topic"] == max(t["topic_probabilities"], key=t["topic_probabilities"].get)
        assert sum(t["topic_probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert "tagged 2 records" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--taxonomy", "only-one"], "the taxonomy must list at least two distinct, non-empty tags"),
        (["--taxonomy", "a,b", "--text-field", "problem"], "no text in field 'problem' (--text-field); its fields: question"),
        (["--taxonomy", "missing.yaml"], "--taxonomy: no file at missing.yaml"),
    ],
)
def test_tagging_refuses_bad_input_in_one_line(tmp_path, capsys, args, message):
    from tinkerx.tag.__main__ import main

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"question": "1+1?"}) + "\n")
    with pytest.raises(SystemExit) as exit_:
        main([str(source), *args, "model=tiny"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_example_fields_stay_hashable_free():
    # Tags live in Example.fields, which takes no part in an example's identity.
    a = Example("q", "1", fields={"t": TagList(["x"])})
    assert hash(a) == hash(Example("q", "1"))

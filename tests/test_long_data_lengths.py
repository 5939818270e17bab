"""dataset.overlong: every data path's examples checked against the context before step 1."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tinkerx.chat import completion_tokens, prompt_tokens, supervised_datum
from tinkerx.data.base import Dataset
from tinkerx.example import Example
from tinkerx.data.lengths import (GENERATE, PAIR, REPLY, Need, apply_length_rule, check_benchmarks, check_prompts, merged, needs_of, record,
                                  token_limit)  # fmt: skip
from tinkerx.data.preference import PreferencePair
from tinkerx.errors import ConfigError, DataError
from tinkerx.models.tiny import build_tokenizer

LIMIT = 120


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def _data(overlong: str = "drop", replies=(10, 200, 30, 500)) -> Dataset:
    data = Dataset(overlong=overlong)
    data.train = [Example(question=f"q{i}", answer="x" * n, id=str(i)) for i, n in enumerate(replies)]
    data.validation = [Example(question="v", answer="y" * 300, id="v")]
    data.test = [Example(question="t" * 50, answer="1", id="t"), Example(question="t" * 200, answer="1", id="t2")]
    return data


def _length(tok, data, ex) -> int:
    return len(prompt_tokens(tok, data.messages(ex))) + len(completion_tokens(tok, data.completion(ex)))


def test_drop_leaves_out_and_counts_the_overlong_replies(tok):
    data = _data()
    longest = max(_length(tok, data, ex) for ex in data.train)
    report = apply_length_rule(data, tok, {"train": Need(REPLY), "validation": Need(REPLY)}, LIMIT, "model.context_length")
    assert [ex.id for ex in data.train] == ["0", "2"]
    assert all(_length(tok, data, ex) <= LIMIT for ex in data.train)
    assert data.validation == []
    train = report.splits["train"]
    assert (train.checked, train.over, train.dropped, train.truncated, train.longest) == (4, 2, 2, 0, longest)
    assert report.metrics()["data/train_dropped"] == 2 and report.metrics()["data/validation_dropped"] == 1
    assert report.summary()["train"]["longest"] == longest
    line = report.warning()
    assert "\n" not in line and "2 of 4 train" in line and f"longest {longest}" in line and "model.context_length=120" in line


def test_truncate_cuts_the_reply_end_and_keeps_the_loss_mask_on_the_reply(tok):
    data = _data("truncate")
    original = {ex.id: data.completion(ex) for ex in data.train}
    report = apply_length_rule(data, tok, {"train": Need(REPLY)}, LIMIT, "model.context_length")
    assert [ex.id for ex in data.train] == ["0", "1", "2", "3"] and report.splits["train"].truncated == 2
    for ex in data.train:
        prompt = prompt_tokens(tok, data.messages(ex))
        reply = completion_tokens(tok, data.completion(ex))
        assert len(prompt) + len(reply) <= LIMIT
        assert original[ex.id].startswith(data.completion(ex))  # the end was cut, the start kept
        weights = supervised_datum(prompt, reply).loss_fn_inputs["weights"].tolist()
        assert weights == [0.0] * (len(prompt) - 1) + [1.0] * len(reply)  # the mask covers the kept reply only
    assert len(prompt_tokens(tok, data.messages(data.train[1]))) + len(completion_tokens(tok, data.completion(data.train[1]))) == LIMIT


def test_error_stops_with_one_line_naming_the_count_and_the_keys(tok):
    with pytest.raises(DataError) as error:
        apply_length_rule(_data("error"), tok, {"train": Need(REPLY)}, LIMIT, "dataset.max_length")
    message = str(error.value)
    assert "\n" not in message and "2 of 4 train" in message and "dataset.max_length=120" in message and "dataset.overlong" in message


def test_every_training_example_too_long_is_an_error_not_an_empty_run(tok):
    with pytest.raises(DataError, match="every training example"):
        apply_length_rule(_data(replies=(300, 400)), tok, {"train": Need(REPLY)}, LIMIT, "model.context_length")


def test_generation_budget_counts_with_the_prompt_and_a_budget_with_no_room_is_a_config_error(tok):
    data = _data()
    apply_length_rule(data, tok, {"train": Need(GENERATE, 80, "sampling.max_tokens")}, LIMIT, "model.context_length")
    assert all(len(prompt_tokens(tok, data.messages(ex))) + 80 <= LIMIT for ex in data.train) and data.train
    with pytest.raises(ConfigError) as error:
        apply_length_rule(_data(), tok, {"train": Need(GENERATE, LIMIT, "sampling.max_tokens")}, LIMIT, "model.context_length")
    assert "sampling.max_tokens = 120" in str(error.value) and "model.context_length=120" in str(error.value)


def test_truncate_never_cuts_a_prompt_that_generates(tok):
    data = _data("truncate")
    data.train = [Example(question="q" * 100, answer="1", id="long"), Example(question="q", answer="1", id="short")]
    report = apply_length_rule(data, tok, {"train": Need(GENERATE, 30, "sampling.max_tokens")}, LIMIT, "model.context_length")
    assert [ex.id for ex in data.train] == ["short"] and report.splits["train"].dropped == 1 and not data.truncated


def test_evaluation_keeps_its_examples_unless_the_prompt_fills_the_context(tok):
    data = _data()
    report = apply_length_rule(data, tok, {"test": Need(GENERATE, 100, "evaluator.max_tokens", evaluation=True)}, LIMIT, "model.context_length")
    assert [ex.id for ex in data.test] == ["t"]  # over with its budget: kept and counted; over on its own: dropped
    assert (report.splits["test"].over, report.splits["test"].dropped) == (2, 1)
    # a budget as long as the context is not a configuration error for evaluation (it only caps generation)
    apply_length_rule(_data(), tok, {"test": Need(GENERATE, LIMIT, "evaluator.max_tokens", evaluation=True)}, LIMIT, "model.context_length")


def test_pairs_are_dropped_or_cut_on_their_longer_reply(tok):
    def pairs_data(rule: str) -> Dataset:
        data = Dataset(overlong=rule)
        pairs = [PreferencePair(Example(question=f"p{i}", answer="a", id=str(i)), "c" * c, "r" * r) for i, (c, r) in enumerate([(5, 8), (5, 300), (200, 9)])]
        data.pairs = {"train": pairs, "test": []}
        data.train = [p.example for p in pairs]
        return data

    dropped = pairs_data("drop")
    report = apply_length_rule(dropped, tok, {"train": Need(PAIR), "test": Need(PAIR)}, LIMIT, "model.context_length")
    assert [p.example.id for p in dropped.pairs["train"]] == ["0"] and [e.id for e in dropped.train] == ["0"]
    assert report.splits["train"].dropped == 2
    cut = pairs_data("truncate")
    apply_length_rule(cut, tok, {"train": Need(PAIR)}, LIMIT, "model.context_length")
    assert len(cut.pairs["train"]) == 3
    for p in cut.pairs["train"]:
        prompt = len(prompt_tokens(tok, cut.messages(p.example)))
        assert prompt + max(len(completion_tokens(tok, p.chosen)), len(completion_tokens(tok, p.rejected))) <= LIMIT
    assert cut.pairs["train"][0].chosen == "c" * 5  # a pair that fits is untouched


def test_limit_comes_from_max_length_within_the_context():
    assert token_limit(512, None) == (512, "model.context_length")
    assert token_limit(512, 256) == (256, "dataset.max_length")
    assert token_limit(None, None) is None
    with pytest.raises(ConfigError, match="dataset.max_length=1024 is beyond model.context_length=512"):
        token_limit(512, 1024)


def test_needs_follow_each_method():
    evaluator = SimpleNamespace(split="test", max_tokens=64)
    assert needs_of(SimpleNamespace(name="sft"), 16, evaluator, {}) == {
        "train": Need(REPLY), "validation": Need(REPLY), "test": Need(GENERATE, 64, "evaluator.max_tokens", evaluation=True)}
    assert needs_of(SimpleNamespace(name="dpo", pairs_from="dataset"), 16, None, {})["train"] == Need(PAIR)
    assert needs_of(SimpleNamespace(name="dpo", pairs_from="sampling"), 16, None, {})["train"] == Need(GENERATE, 16, "sampling.max_tokens")
    assert needs_of(SimpleNamespace(name="grpo"), 16, None, {})["train"].budget == 16
    assert needs_of(SimpleNamespace(name="distill"), 16, None, {})["validation"] == Need(REPLY)
    debate = needs_of(SimpleNamespace(name="debate", rounds=2, split="train"), 16, None, {"judge": SimpleNamespace(max_tokens=32)})
    assert debate["train"].budget == 2 * 2 * 16 + 32 and "method.rounds" in debate["train"].budget_key


def _debate_prompt_tokens(tok, messages) -> int:
    return len(prompt_tokens(tok, messages))


@pytest.mark.parametrize("training", ["rejection_sampling", "rl"])
def test_debate_counts_the_prompts_a_debate_renders_not_the_data_sets(tok, training):
    """A debate reads its own prompts (the debaters' brief, the judge's question over the whole
    transcript), far longer than the data set's question; the check counts the longest of them, for
    the longest distractor, so a debate that passes it never outgrows the context."""
    from tinkerx.methods.debate import Debate
    from tinkerx.methods.debate.prompts import debater_messages, judge_messages
    from tinkerx.methods.debate.transcript import Setup, Turn

    rounds, max_tokens, judge_tokens, limit = 2, 16, 4, 700
    method = Debate(rounds=rounds, training=training)
    needs = needs_of(method, max_tokens, None, {"judge": SimpleNamespace(max_tokens=judge_tokens)})
    budget = 2 * rounds * max_tokens + judge_tokens
    data = Dataset()
    short = Example(question="2 + 2?", answer="A", choices=("4", "5"), id="short")
    # Fits as the data set's prompt, not as a debate; and one that fits only with its short distractor.
    long_question = Example(question="q" * 260, answer="A", choices=("4", "5"), id="long")
    long_distractor = Example(question="q" * 150, answer="A", choices=("4", "5", "x" * 120), id="distractor")
    data.train = [short, long_question, long_distractor]
    assert all(len(prompt_tokens(tok, data.messages(ex))) + budget <= limit for ex in data.train)
    report = apply_length_rule(data, tok, needs, limit, "model.context_length")
    assert [ex.id for ex in data.train] == ["short"] and report.splits["train"].dropped == 2
    counted = method.length_prompts(short)
    assert len(counted) == 2  # the judge's and the last debater's, one distractor
    # The bound holds: the judge's prompt after 2 x rounds arguments of max_tokens tokens each (the
    # byte tokenizer: one token a character), and the last debater's before its own last argument.
    setup = Setup("s", "short", short.question, ("4", "5"), "A", ("A", "B"))
    full = [Turn(side, r, "w" * max_tokens, [], [], [], "") for r in range(1, rounds + 1) for side in "AB"]
    estimate = max(_debate_prompt_tokens(tok, m) for m in counted) + budget
    assert _debate_prompt_tokens(tok, judge_messages(setup, full)) + judge_tokens <= estimate
    assert _debate_prompt_tokens(tok, debater_messages(setup, full[:-1], "B", rounds, rounds)) + max_tokens <= estimate
    # Not multiple choice: nothing rendered, so the method's own one-line refusal names the problem.
    assert method.length_prompts(Example(question="q", answer="1", id="open")) == []


@pytest.mark.parametrize("value", ["keep", 3])
def test_a_bad_rule_is_a_config_error_naming_the_choices(value):
    with pytest.raises(ConfigError, match="dataset.overlong must be one of drop, truncate, error"):
        Dataset(overlong=value)


# --- checks made past build: a suite's benchmarks, an off-policy teacher's prompts -----------------


def _bench(tests: list[tuple[str, int]], max_tokens: int, overlong: str = "drop", max_length: int | None = None) -> SimpleNamespace:
    data = Dataset(overlong=overlong, max_length=max_length)
    data.test = [Example(question="q" * n, answer="1", id=i) for i, n in tests]
    return SimpleNamespace(dataset=data, max_tokens=max_tokens)


def test_each_benchmark_keeps_its_prompts_unless_the_prompt_alone_fills_the_context(tok, tmp_path):
    from tinkerx.runs.recorder import RunRecorder

    benchmarks = {"short": _bench([("a", 5), ("b", 70)], max_tokens=40), "long": _bench([("c", 5), ("d", 200)], max_tokens=10)}
    reports = check_benchmarks(benchmarks, tok, "test", LIMIT)
    # short: "b" runs past the context only with its budget (kept, counted); long: "d" fills it alone (dropped).
    assert [ex.id for ex in benchmarks["short"].dataset.test] == ["a", "b"] and [ex.id for ex in benchmarks["long"].dataset.test] == ["c"]
    assert (reports["short"].splits["short"].over, reports["short"].splits["short"].dropped) == (1, 0)
    assert (reports["long"].splits["long"].over, reports["long"].splits["long"].dropped) == (1, 1)
    metrics, summary, warning = merged(reports)
    assert summary["long"]["long"]["dropped"] == 1 and set(summary) == {"short", "long"}
    assert metrics["data/short_overlong"] == 1 and metrics["data/long_dropped"] == 1 and metrics["data/long_token_limit"] == LIMIT
    assert "\n" not in warning and warning.count("model.context_length=120") == 1 and "1 of 2 short" in warning and "1 of 2 long" in warning
    recorder = RunRecorder(tmp_path)
    record(recorder, reports, "overlong_benchmarks")
    assert recorder.summary_additions["overlong_benchmarks"]["long"]["long"]["dropped"] == 1
    assert (tmp_path / "metrics.jsonl").read_text().count('"step": 0') == 1
    # a budget as long as the context only caps an evaluation's generation: not a configuration error
    check_benchmarks({"b": _bench([("a", 5)], max_tokens=LIMIT)}, tok, "test", LIMIT)


def test_a_benchmark_follows_its_own_data_sets_rule_and_limit(tok):
    with pytest.raises(DataError) as error:
        check_benchmarks({"gsm8k": _bench([("a", 5), ("b", 70)], 40, overlong="error")}, tok, "test", LIMIT)
    assert "\n" not in str(error.value) and "1 of 2 gsm8k" in str(error.value) and "suite.benchmarks.gsm8k.dataset.max_tokens=40" in str(error.value)
    bench = _bench([("a", 5), ("b", 60)], 10, max_length=60)
    report = check_benchmarks({"gsm8k": bench}, tok, "test", LIMIT)["gsm8k"]
    assert (report.limit, report.limit_key, report.splits["gsm8k"].dropped) == (60, "suite.benchmarks.gsm8k.dataset.max_length", 1)
    with pytest.raises(ConfigError, match="suite.benchmarks.gsm8k.dataset: dataset.max_length=500 is beyond model.context_length=120"):
        check_benchmarks({"gsm8k": _bench([("a", 5)], 10, max_length=500)}, tok, "test", LIMIT)
    assert check_benchmarks({"gsm8k": _bench([("a", 500)], 10)}, tok, "test", None) == {}  # no context recorded: nothing to check


def test_teacher_prompts_are_checked_against_the_teachers_context_without_touching_the_split(tok):
    data = _data(overlong="truncate")
    data.train = [Example(question="q" * n, answer="1", id=str(n)) for n in (5, 100, 20)]
    before = list(data.train)
    kept, report = check_prompts(data, tok, data.train, Need(GENERATE, 30, "sampling.max_tokens"), LIMIT, "components.teacher.model.context_length", "teacher_prompts")
    assert [ex.id for ex in kept] == ["5", "20"] and data.train == before and not data.truncated  # prompts that generate are never cut
    assert report.metrics()["data/teacher_prompts_dropped"] == 1 and "data/teacher_prompts_token_limit" in report.metrics()
    with pytest.raises(ConfigError, match="sampling.max_tokens = 120 leaves no room for a prompt within components.teacher.model.context_length=120"):
        check_prompts(data, tok, data.train, Need(GENERATE, LIMIT, "sampling.max_tokens"), LIMIT, "components.teacher.model.context_length", "teacher_prompts")
    with pytest.raises(DataError, match="every training example \\(1\\) is longer than components.teacher.model.context_length=120"):
        check_prompts(data, tok, data.train[1:2], Need(GENERATE, 30, "sampling.max_tokens"), LIMIT, "components.teacher.model.context_length", "teacher_prompts")


def _gsm8k_folder(folder, questions: list[str]):
    (folder / "gsm8k").mkdir(parents=True)
    rows = [{"question": q, "answer": f"{len(q)} letters\n#### {len(q)}"} for q in questions]
    (folder / "gsm8k" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_a_suites_benchmark_prompts_are_checked_against_the_models_context_in_a_run(tmp_path):
    from tests.helpers.compose import compose
    from tests.helpers.runs import metrics_rows, run_in_process

    assert compose(["method=eval", "suite=quick"]).components.suite.context_length == 512  # model=tiny's
    data = _gsm8k_folder(tmp_path / "data", ["How many?", "Count: " + "one " * 150, "And now?"])  # 600+ bytes fill 512
    overrides = ["method=eval", "suite=standard", f"suite.data_dir={data}", "suite.benchmarks.gsm8k.dataset.max_tokens=4"]
    run_in_process(overrides, tmp_path / "run")
    counted = json.loads((tmp_path / "run" / "summary.json").read_text())["overlong_benchmarks"]["gsm8k"]
    assert counted["limit_key"] == "model.context_length" and counted["rule"] == "drop"
    assert (counted["gsm8k"]["checked"], counted["gsm8k"]["over"], counted["gsm8k"]["dropped"]) == (3, 1, 1) and counted["gsm8k"]["longest"] > 512
    step0 = [r for r in metrics_rows(tmp_path / "run") if r["step"] == 0 and "data/gsm8k_dropped" in r]
    assert len(step0) == 1 and step0[0]["data/gsm8k_token_limit"] == 512
    evaluated = (tmp_path / "run" / "eval" / "gsm8k.jsonl").read_text().splitlines()
    assert len(evaluated) == 2  # the prompt that fills the context alone is not sent


def test_an_off_policy_teacher_samples_only_prompts_that_fit_its_own_context(tmp_path):
    from tests.helpers.runs import metrics_rows, run_in_process

    short, long = ["What is 1+1?", "What is 2+2?", "What is 3+3?"], ["Think about this: " + "word " * 12 + str(i) for i in range(3)]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps({"question": q, "answer": "2"}) + "\n" for q in [short[0], *long, *short[1:]]))
    test.write_text(json.dumps({"question": "What is 4+4?", "answer": "8"}) + "\n")
    # The student (tiny, 512 tokens) takes every prompt; the teacher (tiny cut to 64 positions) not the long ones.
    run_in_process(["method=distill", "method.mode=off_policy", "+model@components.teacher.model=tiny", "components.teacher.model.loader.max_position_embeddings=64",
                    "method.filter_correct=false", "method.validation_every=0", "method.evaluate_baseline=false", "method.evaluate_teacher=false",
                    "dataset=jsonl", f"dataset.path={train}", f"dataset.test_path={test}", "dataset.validation_size=0", "sampling.max_tokens=8",
                    "training.max_steps=2", "training.batch_size=2", "training.eval_every=0", "evaluator.max_examples=1"], tmp_path / "run")  # fmt: skip
    sampled = [json.loads(line)["question"] for line in (tmp_path / "run" / "teacher_samples.jsonl").read_text().splitlines()]
    assert sorted(sampled) == sorted(short)
    counted = json.loads((tmp_path / "run" / "summary.json").read_text())["overlong_teacher"]["teacher_prompts"]
    assert counted["limit_key"] == "components.teacher.model.context_length" and counted["limit"] == 64
    assert (counted["teacher_prompts"]["checked"], counted["teacher_prompts"]["over"], counted["teacher_prompts"]["dropped"]) == (6, 3, 3)
    step0 = [r for r in metrics_rows(tmp_path / "run") if "data/teacher_prompts_dropped" in r]
    assert len(step0) == 1 and step0[0]["step"] == 0 and step0[0]["data/teacher_prompts_token_limit"] == 64
    assert not any("data/train_overlong" in r for r in metrics_rows(tmp_path / "run"))  # within the student's own context: nothing over


def test_a_teacher_whose_context_fits_no_prompt_stops_the_run_with_one_line(tmp_path):
    from tests.helpers.runs import run_in_process

    # 16 one-digit prompts of ~25 tokens + 16 to generate: none fits a teacher of 40 positions.
    with pytest.raises(DataError, match=r"every training example \(16\) is longer than components.teacher.model.context_length=40 tokens with sampling.max_tokens=16"):
        run_in_process(["method=distill", "method.mode=off_policy", "+model@components.teacher.model=tiny", "components.teacher.model.loader.max_position_embeddings=40",
                        "method.filter_correct=false", "method.max_prompts=16", "sampling.max_tokens=16", "training.max_steps=1"], tmp_path / "run")  # fmt: skip


def test_eval_of_a_whole_file_checks_the_examples_beyond_its_carved_test_split(tmp_path):
    from tests.helpers.runs import run_in_process

    path = tmp_path / "qa.jsonl"
    questions = [f"What is {i}+1?" for i in range(7)] + ["Count: " + "one " * 150 + str(i) for i in range(3)]  # 600+ bytes fill 512
    path.write_text("".join(json.dumps({"question": q, "answer": "1"}) + "\n" for q in questions))
    run_in_process(["method=eval", "dataset=jsonl", f"dataset.path={path}", "dataset.validation_size=0", "dataset.test_size=2",
                    "sampling.max_tokens=4", "evaluator.max_examples=null"], tmp_path / "run")  # fmt: skip
    evaluated = (tmp_path / "run" / "eval" / "jsonl.jsonl").read_text().splitlines()
    assert len(evaluated) == 7  # every example of the file but the three whose prompt fills the context
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    by_build = summary.get("overlong", {}).get("test", {}).get("dropped", 0)  # the carved test split, checked by build
    here = summary.get("overlong_whole_file", {}).get("jsonl", {}).get("jsonl", {})
    assert by_build + here.get("dropped", 0) == 3 and here.get("checked") == 8


def test_teacher_replies_longer_than_the_students_context_are_dropped_or_cut_before_the_student_trains(tmp_path):
    from tests.helpers.runs import metrics_rows, run_in_process

    # A teacher of another tokenizer can write more student tokens than sampling.max_tokens: here, a cached
    # sample of 700 bytes for a student (tiny, byte tokens) of 512.
    train, test, samples = tmp_path / "train.jsonl", tmp_path / "test.jsonl", tmp_path / "teacher_samples.jsonl"
    train.write_text("".join(json.dumps({"question": f"{i}+0", "answer": str(i)}) + "\n" for i in range(4)))
    test.write_text(json.dumps({"question": "5+0", "answer": "5"}) + "\n")
    rows = [{"id": f"{train}:{i}", "question": f"{i}+0", "answer": str(i), "completion": str(i)} for i in range(4)]
    rows[1]["completion"] = "1" + " and so on" * 70
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["method=distill", "method.mode=off_policy", f"method.samples_path={samples}", "method.validation_every=0", "method.evaluate_baseline=false",
              "method.evaluate_teacher=false", "+model@components.teacher.model=tiny", "dataset=jsonl", f"dataset.path={train}", f"dataset.test_path={test}",
              "dataset.validation_size=0", "sampling.max_tokens=8", "training.max_steps=1", "training.batch_size=2", "training.eval_every=0",
              "evaluator.max_examples=1"]  # fmt: skip
    run_in_process(common, tmp_path / "drop")
    counted = json.loads((tmp_path / "drop" / "summary.json").read_text())["overlong_teacher_replies"]["teacher_replies"]
    assert counted["limit"] == 512 and (counted["teacher_replies"]["checked"], counted["teacher_replies"]["dropped"]) == (4, 1)
    assert counted["teacher_replies"]["longest"] > 700
    assert next(r for r in metrics_rows(tmp_path / "drop") if "data/teacher_replies_dropped" in r)["step"] == 0
    run_in_process([*common, "dataset.overlong=truncate"], tmp_path / "cut")
    counted = json.loads((tmp_path / "cut" / "summary.json").read_text())["overlong_teacher_replies"]["teacher_replies"]["teacher_replies"]
    assert (counted["over"], counted["truncated"], counted["dropped"]) == (1, 1, 0)


def test_an_on_policy_teacher_with_a_shorter_context_scores_only_prompts_that_fit_it(tmp_path):
    from tests.helpers.runs import run_in_process

    short, long = ["What is 1+1?", "What is 2+2?"], ["Think about this: " + "word " * 12 + str(i) for i in range(2)]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps({"question": q, "answer": "2"}) + "\n" for q in [*long, *short]))
    test.write_text(json.dumps({"question": "What is 4+4?", "answer": "8"}) + "\n")
    run_in_process(["method=distill", "+model@components.teacher.model=tiny", "components.teacher.model.loader.max_position_embeddings=64",
                    "method.evaluate_baseline=false", "method.evaluate_teacher=false", "method.group_size=2", "dataset=jsonl", f"dataset.path={train}",
                    f"dataset.test_path={test}", "dataset.validation_size=0", "sampling.max_tokens=8", "training.max_steps=2", "training.batch_size=2",
                    "training.eval_every=0", "evaluator.max_examples=1"], tmp_path / "run")  # fmt: skip
    counted = json.loads((tmp_path / "run" / "summary.json").read_text())["overlong_teacher"]["teacher_prompts"]["teacher_prompts"]
    assert (counted["checked"], counted["over"], counted["dropped"]) == (4, 2, 2)


def test_an_on_policy_teacher_whose_context_fits_no_prompt_stops_the_run_with_one_line(tmp_path):
    from tests.helpers.runs import run_in_process

    with pytest.raises(DataError, match=r"every training example \(\d+\) is longer than components.teacher.model.context_length=40"):
        run_in_process(["method=distill", "+model@components.teacher.model=tiny", "components.teacher.model.loader.max_position_embeddings=40",
                        "sampling.max_tokens=16", "training.max_steps=1"], tmp_path / "run")  # fmt: skip

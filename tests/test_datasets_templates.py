"""Prompt templates over any record field (SVAMP / ASDiv style), and where held-out splits come from."""

from __future__ import annotations

import json
import logging

import pytest
from tests.conftest import compose
from tinkerx.data.base import PromptFormat
from tinkerx.example import Example
from tinkerx.errors import ConfigError, DataError


def instantiate(node):
    from tinkerx.build import instantiate as build

    return build(node, "dataset")  # as the CLI does: the user's error, not Hydra's wrapper

SVAMP = [
    {"Body": f"Jack had {n} apples. He gave {k} to Jill.", "Question": "How many apples does Jack have now?",
     "Answer": n - k, "Type": "Subtraction"}
    for n, k in [(8, 3), (12, 5), (30, 7), (9, 9), (14, 2), (21, 6), (40, 11), (17, 4)]
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _svamp(tmp_path, *overrides):
    path = _write(tmp_path / "svamp.jsonl", SVAMP)
    cfg = compose(["dataset=jsonl", f"dataset.path={path}", "dataset.question_field=Question", "dataset.answer_field=Answer", *overrides])
    return path, instantiate(cfg.dataset)


def test_template_joins_fields_of_the_record(tmp_path):
    _, dataset = _svamp(tmp_path, "dataset.prompt.template='{Body} {Question}'")
    every = dataset.train + dataset.validation + dataset.test
    assert len(every) == len(SVAMP)
    first = next(e for e in every if e.id.endswith(":0"))
    assert dataset.messages(first) == [{"role": "user", "content": "Jack had 8 apples. He gave 3 to Jill. How many apples does Jack have now?"}]
    assert first.answer == "5"
    # The standard names keep their meaning beside the record's own fields.
    assert PromptFormat(template="{Type}: {question} -> {answer}").messages(first)[0]["content"] == "Subtraction: How many apples does Jack have now? -> 5"


def test_template_naming_a_missing_field_is_one_line_naming_field_file_and_fields(tmp_path):
    with pytest.raises(DataError) as error:
        _svamp(tmp_path, "dataset.prompt.template='{Body} {Equation}'")
    message = str(error.value)
    assert "\n" not in message
    assert "Equation" in message and "svamp.jsonl" in message
    assert "Answer, Body, Question, Type" in message


def test_a_record_without_a_field_the_template_names(tmp_path):
    path = _write(tmp_path / "gappy.jsonl", [*SVAMP[:5], {"Question": "How many?", "Answer": 1}, *SVAMP[5:]])
    cfg = compose(["dataset=jsonl", f"dataset.path={path}", "dataset.question_field=Question", "dataset.answer_field=Answer",
                   "dataset.prompt.template='{Body} {Question}'"])
    with pytest.raises(DataError, match=r"gappy.jsonl: record 6 has no value for Body"):
        instantiate(cfg.dataset)


def test_other_data_sets_check_their_template_too():
    cfg = compose(["dataset.prompt.template='{question} in {Body}'"])  # arithmetic
    with pytest.raises(DataError, match="Body"):
        instantiate(cfg.dataset)


def test_field_names_cover_template_target_and_system():
    prompt = PromptFormat(template="{Body} {Question}", system="Subject: {subject}", target="{solution}")
    assert prompt.field_names() == ["subject", "Body", "Question", "solution"]
    prompt.check(Example("q", "a", fields={"Body": "b", "Question": "q", "subject": "s"}), "f.jsonl")


def test_carving_a_test_split_is_announced(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        path, dataset = _svamp(tmp_path)  # test_size=100 and validation_size=100 of 8 records
    assert dataset.test_carved_from == str(path)
    assert len(dataset.test) == 2 and len(dataset.validation) == 1 and len(dataset.train) == 5
    assert "dataset.test_size=100 capped at 2" in caplog.text and "dataset.validation_size=100 capped at 1" in caplog.text


def test_a_test_file_is_not_carved(tmp_path):
    test = _write(tmp_path / "test.jsonl", SVAMP[:3])
    _, dataset = _svamp(tmp_path, f"dataset.test_path={test}")
    assert dataset.test_carved_from is None and len(dataset.test) == 3


def test_bad_budget_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="dataset.max_tokens must be >= 1"):
        _svamp(tmp_path, "dataset.max_tokens=0")


def test_offline_math_grpo_carves_train_and_test_from_math500(shared_data):
    # The README's offline MATH GRPO command: MATH-500 as the training file, its test split carved out.
    cfg = compose(["method=grpo", "dataset=math", "reward=math_equivalence", f"dataset.path={shared_data}/math500/test.jsonl",
                   "dataset.test_size=100", "dataset.validation_size=50"])
    dataset = instantiate(cfg.dataset)
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (350, 50, 100)
    assert not {e.id for e in dataset.train} & {e.id for e in dataset.test}
    assert dataset.test_carved_from.endswith("math500/test.jsonl")
    assert cfg.sampling.max_tokens == dataset.max_tokens == 2048

"""Data sets load from the shared reference files, and fail offline with one-line messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hydra.utils import instantiate

from tests.helpers.compose import compose
from tinkerx.data.gpqa_diamond import GPQADiamond
from tinkerx.data.gsm8k import GSM8K
from tinkerx.data.math import MATH
from tinkerx.data.multiple_choice import MultipleChoice
from tinkerx.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _data(relative: str) -> str:
    path = DATA / relative
    if not path.is_file():
        pytest.skip(f"../shared/data not found: {path}")
    return str(path)


def _ids(examples) -> set[str]:
    return {e.id for e in examples}


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def _compose_dataset(name: str, *overrides: str):
    cfg = compose([f"+dataset={name}", *(f"dataset.{o}" for o in overrides)], config_name=None)
    return instantiate(cfg.dataset)


def test_gsm8k_from_local_files():
    ds = GSM8K(path=_data("gsm8k/train.jsonl"), test_path=_data("gsm8k/test.jsonl"))
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (7473 - 200, 200, 1319)
    first = ds.test[0]
    assert first.answer == "18" and first.id == "gsm8k-test-0"
    assert first.solution.endswith("#### 18") and "Janet" in first.question
    # answers are bare numbers: "#### 1,000" becomes "1000"
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", e.answer) for e in ds.train + ds.validation + ds.test)
    assert not _ids(ds.train) & _ids(ds.validation)


def test_gsm8k_caps_are_seeded_subsets_and_leave_validation_alone():
    kwargs = dict(path=_data("gsm8k/train.jsonl"), test_path=_data("gsm8k/test.jsonl"), max_train=100, max_test=50)
    a, b = GSM8K(**kwargs), GSM8K(**kwargs)
    assert (len(a.train), len(a.validation), len(a.test)) == (100, 200, 50)
    assert [e.id for e in a.train] == [e.id for e in b.train] and [e.id for e in a.test] == [e.id for e in b.test]
    uncapped = GSM8K(path=kwargs["path"], test_path=kwargs["test_path"])
    assert [e.id for e in a.validation] == [e.id for e in uncapped.validation]


def test_gsm8k_config_prompt_asks_for_the_graded_format():
    ds = _compose_dataset("gsm8k", f"path={_data('gsm8k/test.jsonl')}", "max_train=10")
    # only a train file: the test split is carved from it
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (10, 200, 500)
    assert not _ids(ds.test) & (_ids(ds.train) | _ids(ds.validation))
    assert "####" in ds.messages(ds.test[0])[-1]["content"]
    assert ds.completion(ds.test[0]).endswith(f"#### {ds.test[0].answer}")


def test_gsm8k_bad_record_is_a_one_line_error(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "no final line"}) + "\n")
    with pytest.raises(DataError) as info:
        GSM8K(path=str(path), test_path=str(path))
    assert "record 1: answer has no final '#### <number>' line" in _one_line(info)


def test_math500_from_the_local_test_file():
    ds = MATH(test_path=_data("math500/test.jsonl"))
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (0, 0, 500)
    first = ds.test[0]
    assert first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first.id == "test/precalculus/807.json" and "\\boxed" in first.solution


def test_math_config_prompt_asks_for_boxed():
    ds = _compose_dataset("math", f"test_path={_data('math500/test.jsonl')}")
    assert "\\boxed{}" in ds.messages(ds.test[0])[-1]["content"]


def test_math_answer_falls_back_to_the_last_box(tmp_path):
    path = tmp_path / "math.jsonl"
    rows = [
        {"problem": f"p{i}", "solution": f"first \\boxed{{1}} then \\boxed{{\\frac{{{i}}}{{2}}}}"} for i in range(5)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = MATH(path=str(path), validation_size=1, test_size=1)
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (3, 1, 1)
    assert sorted(e.answer for e in ds.train + ds.validation + ds.test) == [f"\\frac{{{i}}}{{2}}" for i in range(5)]

    path.write_text(json.dumps({"problem": "p", "solution": "no box"}) + "\n")
    with pytest.raises(DataError) as info:
        MATH(path=str(path))
    assert "record 1: no 'answer' field and no \\boxed{} in the solution" in _one_line(info)


def test_mmlu_stem_config_default_path_is_relative_to_where_you_run(monkeypatch):
    _data("mmlu_stem/test.jsonl")
    monkeypatch.delenv("TINKERX_DATA", raising=False)
    monkeypatch.chdir(ROOT)  # ../shared/data from the project root
    ds = _compose_dataset("mmlu_stem")
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (3018 - 600, 100, 500)
    assert not _ids(ds.train) & _ids(ds.test) and not _ids(ds.validation) & _ids(ds.test)
    assert all(len(e.choices) == 4 and e.answer in "ABCD" for e in ds.train + ds.validation + ds.test)
    prompt = ds.messages(ds.test[0])[-1]["content"]
    assert "A) " in prompt and "D) " in prompt and "Answer: <letter>" in prompt


def test_mmlu_stem_answer_index_becomes_a_letter(monkeypatch):
    path = _data("mmlu_stem/test.jsonl")
    monkeypatch.setenv("TINKERX_DATA", str(DATA))
    ds = _compose_dataset("mmlu_stem", "test_size=10", "validation_size=0")
    with open(path, encoding="utf-8") as f:
        raw = [json.loads(line) for line in f]
    by_id = {e.id: e for e in ds.train + ds.test}
    first = by_id["multiple_choice-0"]
    assert first.question == raw[0]["question"] and first.choices == tuple(raw[0]["choices"])
    assert first.answer == "ABCD"[raw[0]["answer"]]


def test_multiple_choice_with_letter_answers_and_bad_records(tmp_path):
    path = tmp_path / "mc.jsonl"
    rows = [{"q": f"q{i}", "opts": ["x", "y", "z"], "gold": "(c)", "key": f"k{i}"} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = dict(question_field="q", choices_field="opts", answer_field="gold", id_field="key")
    ds = MultipleChoice(str(path), answer_is_index=False, validation_size=1, test_size=2, **mapping)
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (3, 1, 2)
    assert {e.answer for e in ds.train} == {"C"} and ds.train[0].id.startswith("k")

    with pytest.raises(DataError) as info:
        MultipleChoice(str(path), answer_is_index=True, **mapping)
    assert "record 1: answer '(c)' is not a choice index 0-2" in _one_line(info)
    with pytest.raises(ConfigError) as info:
        MultipleChoice(str(path), answer_is_index=False, test_size=6, **mapping)
    assert "test_size=6 leaves no training examples out of 6" in _one_line(info)


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Both libraries read the variable once, at import: patch the values they already hold.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    # A copy cached on this machine would load offline; hide it.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


@pytest.mark.parametrize("dataset, name", [(GSM8K, "gsm8k"), (MATH, "math")])
def test_offline_hub_is_a_one_line_error(offline_hub, dataset, name):
    with pytest.raises(DataError) as info:
        dataset()
    message = _one_line(info)
    assert message.startswith(
        f"{name}: the Hugging Face hub is unreachable; point at local files with dataset.path="
    )
    assert "dataset.test_path=" in message


def test_gpqa_without_a_token_says_it_is_gated(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(DataError) as info:
        GPQADiamond()
    message = _one_line(info)
    assert "gated" in message and "HF_TOKEN" in message and "dataset=mcq_jsonl dataset.path=" in message


def test_gpqa_offline_says_it_is_gated(offline_hub, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    with pytest.raises(DataError) as info:
        GPQADiamond()
    assert _one_line(info).startswith("gpqa_diamond: Idavidrein/gpqa is gated")


def test_gpqa_shuffles_answers_deterministically_per_question(monkeypatch):
    import huggingface_hub

    rows = [
        {"Question": f"q{i}", "Correct Answer": f"right{i}", "Record ID": f"rec{i}",
         **{f"Incorrect Answer {k}": f"wrong{i}.{k}" for k in (1, 2, 3)}}
        for i in range(40)
    ]
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr("tinkerx.data.gpqa_diamond.load_hub_rows", lambda *args: rows)
    a, b = GPQADiamond(validation_size=5, test_size=10), GPQADiamond(validation_size=5, test_size=10)
    examples = a.train + a.validation + a.test
    assert len(examples) == 40
    for e in examples:
        assert e.choices["ABCD".index(e.answer)].startswith("right")
        assert sorted(e.choices) == sorted([f"right{e.question[1:]}"] + [f"wrong{e.question[1:]}.{k}" for k in (1, 2, 3)])
    assert [(e.id, e.answer, e.choices) for e in examples] == [(e.id, e.answer, e.choices) for e in b.train + b.validation + b.test]
    assert {e.answer for e in examples} == set("ABCD")  # not always the first choice
    other_seed = GPQADiamond(validation_size=5, test_size=10, seed=1)
    assert {e.id: e.answer for e in examples} != {e.id: e.answer for e in other_seed.train + other_seed.validation + other_seed.test}

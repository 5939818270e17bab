"""No field is stringified silently: a list or object where a loader expects text is a one-line DataError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinkerx.data.local_jsonl import JsonlQA
from tinkerx.data.multiple_choice import MultipleChoice
from tinkerx.data.preference import PreferenceJsonl
from tinkerx.errors import DataError

OASST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "oasst1_en100" / "oasst_en100_pairs.jsonl"
MESSAGES = [{"role": "user", "content": "hi"}]


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _one_line(error: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


def test_message_lists_in_preference_pairs_are_read_as_conversations_not_a_repr(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(3)] + [{"prompt": MESSAGES, "chosen": "a", "rejected": "b"}]
    path = _write(tmp_path / "pairs.jsonl", rows)
    ds = PreferenceJsonl(path, test_size=0)
    assert ds.messages(ds.train[3]) == MESSAGES and ds.train[3].question == "hi"  # the messages themselves, never their repr


@pytest.mark.skipif(not OASST.is_file(), reason="../shared/data/oasst1_en100 is absent")
def test_the_oasst_pairs_file_reads_as_conversation_pairs():
    ds = PreferenceJsonl(str(OASST))
    assert ds.pairs["train"] and all(ds.messages(ex)[-1]["role"] == "user" for ex in ds.train)


@pytest.mark.parametrize("value, kind", [({"text": "x"}, "object"), ([1, 2], "list"), (True, "boolean"), (None, "null")])
def test_question_answer_fields_must_be_text(tmp_path, value, kind):
    rows = [{"question": "1+1=", "answer": "2"}, {"question": "2+2=", "answer": value}]
    path = _write(tmp_path / "qa.jsonl", rows)
    with pytest.raises(DataError) as error:
        JsonlQA(path, validation_size=0, test_size=0)
    _one_line(error, f"{path}:2", "'answer'", kind)


def test_numbers_stay_valid_answers(tmp_path):
    path = _write(tmp_path / "qa.jsonl", [{"question": "1+1=", "answer": 2}, {"question": "2+2=", "answer": 4}])
    data = JsonlQA(path, validation_size=0, test_size=0)
    assert sorted(e.answer for e in data.train) == ["2", "4"]


def test_multiple_choice_question_must_be_text_while_choices_stay_a_list(tmp_path):
    ok = {"question": "pick", "choices": ["a", "b"], "answer": 0}
    path = _write(tmp_path / "mcq.jsonl", [ok, {**ok, "question": ["pick", "one"]}])
    with pytest.raises(DataError) as error:
        MultipleChoice(path, validation_size=0, test_size=0)
    _one_line(error, f"{path}:2", "'question'", "list")

"""Data files recorded with absolute paths and hashes, and checked again before a reproduction."""

from __future__ import annotations

import json

import pytest

from tests.conftest import compose
from tinkerx.errors import DataError
from tinkerx.runs.data_files import DATA_FILES, quote_override_value, record_data_files, recorded_data_overrides


def test_relative_paths_become_absolute_and_hashed(tmp_path, monkeypatch):
    (tmp_path / "qa.jsonl").write_text('{"question": "1+1=", "answer": "2"}\n')
    monkeypatch.chdir(tmp_path)
    cfg = compose(["dataset=jsonl", "dataset.path=qa.jsonl", "dataset.test_path=missing.jsonl"])
    files = record_data_files(cfg, tmp_path / "run")
    assert cfg.dataset.path == str(tmp_path / "qa.jsonl")
    assert cfg.dataset.test_path == "missing.jsonl"  # left for the data set to report by name
    assert list(files) == ["dataset.path"] and len(files["dataset.path"]["sha256"]) == 64
    assert json.loads((tmp_path / "run" / DATA_FILES).read_text()) == files

    assert recorded_data_overrides(tmp_path / "run", set()) == [f"dataset.path={tmp_path / 'qa.jsonl'}"]
    assert recorded_data_overrides(tmp_path / "run", {"dataset.path"}) == []  # the user chose other data
    (tmp_path / "qa.jsonl").write_text('{"question": "1+1=", "answer": "3"}\n')
    with pytest.raises(DataError, match="changed since the run"):
        recorded_data_overrides(tmp_path / "run", set())
    (tmp_path / "qa.jsonl").unlink()
    with pytest.raises(DataError, match="is gone"):
        recorded_data_overrides(tmp_path / "run", set())


def test_a_run_without_data_files_needs_no_overrides(tmp_path):
    assert record_data_files(compose([]), tmp_path) == {} and not (tmp_path / DATA_FILES).exists()
    assert recorded_data_overrides(tmp_path, set()) == []


def test_override_values_are_quoted_only_when_hydra_needs_it():
    assert quote_override_value("/data/gsm8k/train.jsonl") == "/data/gsm8k/train.jsonl"
    assert quote_override_value("/my data/a,b.jsonl") == "'/my data/a,b.jsonl'"
    from hydra.core.override_parser.overrides_parser import OverridesParser

    awkward = "/it's here/a,b.jsonl"
    parsed = OverridesParser.create().parse_override("dataset.path=" + quote_override_value(awkward))
    assert parsed.value() == awkward

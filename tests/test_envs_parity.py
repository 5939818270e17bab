"""Parity: today's GRPO configs through the episode runner give the metrics recorded before it existed.

tests/fixtures/grpo_parity/*.jsonl are metrics.jsonl (without wall-clock keys) of four tiny GRPO runs
recorded from the code before GRPO sampled through tinkerx/envs (tests/helpers/grpo_parity.py): same
seed, same samples, same rewards, same updates -- so every number must match.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.grpo_parity import CASES, FIXTURES, overrides, stripped
from tests.helpers.runs import assert_same_run_up_to_float_rounding, metrics_rows, run_in_process


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_turn_environments_reproduce_grpo_metrics(case, tmp_path):
    expected = [json.loads(line) for line in (FIXTURES / f"{case}.jsonl").read_text().splitlines()]
    run_in_process(overrides(case, tmp_path), tmp_path / case)
    got = stripped(metrics_rows(tmp_path / case))
    assert len(got) == len(expected) == 4
    assert any(r.get("train/datums") for r in got), "the fixture must include updates"
    assert_same_run_up_to_float_rounding(got, expected)

"""What an evaluation against an endpoint spends: the tokens the endpoint reports (``usage`` of each
reply) are the run's, equal to the same evaluation's in-process counts, priced by prices.endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import compose
from tinkerx.errors import ConfigError

EVAL = ["method=eval", "suite=dataset", "evaluator.max_examples=8", "sampling.max_tokens=8"]


def _run(overrides: list[str], run_dir: Path) -> dict:
    from tinkerx.app import run

    return run(compose(overrides), run_dir)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.runner import local_server

    with local_server(TinyModel(), tmp_path_factory.mktemp("serve")) as srv:
        yield srv


def test_an_endpoint_reports_the_tokens_the_same_evaluation_counts_in_process(tmp_path, server):
    endpoint = ["backend=openai", f"backend.base_url={server.url}/v1", "backend.timeout_s=30"]
    local = _run(EVAL, tmp_path / "local")["usage"]
    remote = _run([*EVAL, *endpoint, "prices.endpoint.prefill=1.5", "prices.endpoint.sample=2.0"], tmp_path / "remote")["usage"]
    reported = json.loads((tmp_path / "remote" / "endpoint_usage.json").read_text())
    assert remote["prefill_tokens"] == reported["prompt_tokens"] == local["prefill_tokens"] > 0
    assert remote["sample_tokens"] == reported["completion_tokens"] == local["sample_tokens"] > 0
    assert remote["cost_usd"] == pytest.approx((remote["prefill_tokens"] * 1.5 + remote["sample_tokens"] * 2.0) / 1e6)
    assert local["cost_usd"] is None and local["cost"].startswith("unknown")  # the tiny model has no Tinker price


def test_a_cost_budget_on_an_endpoint_without_prices_is_refused(tmp_path, server):
    endpoint = ["backend=openai", f"backend.base_url={server.url}/v1", "backend.timeout_s=30"]
    with pytest.raises(ConfigError, match="training.max_cost on backend=openai needs the endpoint's prices"):
        _run([*EVAL, *endpoint, "training.max_cost=1"], tmp_path / "run")

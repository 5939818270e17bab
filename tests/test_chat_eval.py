"""method=eval dataset=chat: held-out NLL and sampled replies, in process and from an OpenAI endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.runs import run_in_process
from tinkerx.errors import ConfigError


def _conversations(path: Path, n: int) -> Path:
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"{i}+1?"},
                          {"role": "assistant", "content": str(i + 1)}]} for i in range(n)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _eval_args(path: Path) -> list[str]:
    return ["method=eval", "dataset=chat", f"dataset.path={path}", "~reward", "evaluator.max_examples=6", "sampling.max_tokens=6", "sampling.temperature=0"]


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "eval" / "chat.jsonl").read_text().splitlines()]


def test_eval_on_conversations_reports_nll_and_keeps_the_replies(tmp_path):
    summary = run_in_process(_eval_args(_conversations(tmp_path / "c.jsonl", 12)), tmp_path / "run")
    final = summary["final"]
    records = _records(tmp_path / "run")
    # Scored on exactly the reference replies of the whole held-out split (here the whole file, 12
    # conversations; replies sampled for the first 6): byte tokens, so each reply's digits plus <|im_end|>.
    assert final["nll"] > 0 and final["nll_tokens"] == sum(len(str(i + 1)) + 1 for i in range(12))
    assert "accuracy" not in final
    assert len(records) == 6 and all(r["completion"] and r["reference"] for r in records)
    with pytest.raises(ConfigError, match="compare: chat is not graded"):
        run_in_process([*_eval_args(tmp_path / "c.jsonl"), f"compare={tmp_path / 'run'}"], tmp_path / "again")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.runner import local_server

    with local_server(TinyModel(), tmp_path_factory.mktemp("serve")) as srv:
        yield srv


def test_eval_on_conversations_through_an_openai_endpoint_samples_the_same_replies(tmp_path, server):
    path = _conversations(tmp_path / "c.jsonl", 12)
    run_in_process(_eval_args(path), tmp_path / "local")
    remote = run_in_process([*_eval_args(path), "backend=openai", f"backend.base_url={server.url}/v1", "backend.timeout_s=30"], tmp_path / "remote")
    local_replies = [r["completion"] for r in _records(tmp_path / "local")]
    assert [r["completion"] for r in _records(tmp_path / "remote")] == local_replies and all(local_replies)
    assert "nll" not in remote["final"] and remote["final"]["num_examples"] == 6  # an endpoint samples but does not score tokens

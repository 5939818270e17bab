"""What a run spends: the metered clients count exactly the tokens sent (checked against counts made
here from the tiny model's own tokenizer and replies), prices give a cost or "unknown" (never 0),
and a budget stops a run with a resume point that continues with a larger one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tinkerx.errors import ConfigError
from tinkerx.lifecycle import RunLifecycle
from tinkerx.pipeline import Pipeline
from tinkerx.runs import resume_points
from tinkerx.runs.metered_clients import MeteredSamplingClient, MeteredService
from tinkerx.runs.prices import PriceTable, Prices, table_from
from tinkerx.runs.recorder import RunRecorder
from tinkerx.runs.status import run_status
from tinkerx.runs.usage import UsageMeter
from tinkerx.settings import OptimSettings, SamplingSettings, TrainingSettings

TINY = "tinkerx/tiny"


def _meter(prices: dict[str, Prices] | None = None) -> UsageMeter:
    return UsageMeter(PriceTable(models=prices or {}, taken="2026-01-01", source="https://example.org/prices"), TINY)


# ---- counting, on the tiny model -------------------------------------------------------------
def test_metered_clients_count_exactly_the_tokens_sent(tiny_service):
    from tinker import types

    from tinkerx.chat import supervised_datum
    from tinkerx.sampler import compute_logprobs_all, sample_prompts

    meter = _meter({TINY: Prices(prefill=1.0, sample=2.0, train=3.0)})
    service = MeteredService(tiny_service, meter)
    tokenizer = tiny_service.get_tokenizer(TINY)
    pairs = [("12+30=", "42"), ("7+8=", "15"), ("100+1=", "101")]
    encoded = [(tokenizer.encode(q, add_special_tokens=False), tokenizer.encode(a, add_special_tokens=False)) for q, a in pairs]
    data = [supervised_datum(q, a) for q, a in encoded]
    sent = sum(d.model_input.length for d in data)  # what the service receives: each datum's input tokens
    assert sent == sum(len(q) + len(a) - 1 for q, a in encoded)  # counted here from the tokenizer alone

    trainer = service.create_lora_training_client(TINY, rank=4, seed=0).result()
    trainer.forward_backward(data, "cross_entropy").result()
    trainer.forward(data, "cross_entropy").result()
    assert meter.totals()["train_tokens"] == sent and meter.totals()["prefill_tokens"] == sent

    sampler = trainer.save_weights_and_get_sampling_client().result()
    prompts = [q for q, _ in encoded]
    params = types.SamplingParams(max_tokens=5, temperature=1.0, seed=3)
    replies = [f.result() for f in sample_prompts(sampler, prompts, 2, params)]
    sampled = sum(len(s.tokens) for r in replies for s in r.sequences)
    assert 0 < sampled <= 3 * 2 * 5
    # The prompt is prefilled once per request, whatever the number of samples.
    assert meter.totals()["prefill_tokens"] == sent + sum(map(len, prompts))
    assert meter.totals()["sample_tokens"] == sampled

    # A base model's client (a judge's, a teacher's): counted, and counted as frozen too.
    base = service.create_sampling_client(base_model=TINY).result()
    [f.result() for f in compute_logprobs_all(base, prompts)]
    totals = meter.totals()
    assert totals["prefill_tokens"] == sent + 2 * sum(map(len, prompts)) and totals["frozen_tokens"] == sum(map(len, prompts))
    assert totals["total_tokens"] == totals["prefill_tokens"] + sampled + sent
    assert totals["cost_usd"] == pytest.approx((totals["prefill_tokens"] * 1.0 + sampled * 2.0 + sent * 3.0) / 1e6)


def test_optional_methods_stay_absent_where_the_wrapped_client_lacks_them():
    class SdkLike:  # the tinker SDK's sampling client: no sample_many, no compute_logprobs_many
        def sample(self, prompt, num_samples, sampling_params):
            raise AssertionError("not called")

    client = MeteredSamplingClient(SdkLike(), _meter(), TINY, frozen=False)
    assert getattr(client, "sample_many", None) is None and getattr(client, "compute_logprobs_many", None) is None
    assert callable(client.sample)


def test_a_sampled_reply_is_counted_once_however_often_it_is_read(tiny_service):
    from tinker import types

    meter = _meter()
    base = MeteredService(tiny_service, meter).create_sampling_client(base_model=TINY).result()
    future = base.sample(prompt=types.ModelInput.from_ints([5, 6, 7]), num_samples=1, sampling_params=types.SamplingParams(max_tokens=4, seed=1))
    first, again = future.result(), future.result()
    assert first is again and meter.totals()["sample_tokens"] == len(first.sequences[0].tokens)
    assert meter.totals()["prefill_tokens"] == 3


# ---- prices ------------------------------------------------------------------------------------
def test_a_model_without_a_price_costs_unknown_never_zero():
    meter = _meter({"Qwen/Qwen3-8B": Prices(0.1, 0.2, 0.3)})
    meter.add("train", 1000)
    summary, step = meter.summary(), meter.step_metrics()
    assert summary["cost_usd"] is None and summary["cost"].startswith("unknown") and TINY in summary["cost"]
    assert "usage/cost_usd" not in step and "usage/total_cost_usd" not in step and step["usage/train_tokens"] == 1000
    assert "2026-01-01" in summary["prices"] and "https://example.org/prices" in summary["prices"]


def test_a_kind_without_a_price_makes_the_cost_unknown_only_when_used():
    meter = _meter({TINY: Prices(prefill=0.5, sample=1.0, train=None)})
    meter.add("prefill", 2_000_000)
    assert meter.totals()["cost_usd"] == pytest.approx(1.0)
    meter.add("train", 1)
    assert meter.totals()["cost_usd"] is None


def test_the_shipped_table_has_a_date_and_a_source_and_prices_qwen3_8b(compose_config):
    from omegaconf import OmegaConf

    cfg = compose_config(["model=qwen3-8b", "backend=tinker"])
    table = table_from(OmegaConf.to_container(cfg.prices, resolve=True))
    assert table.taken and table.source.startswith("https://")
    assert table.for_model(cfg.model.base_model) is not None and table.for_model("tinkerx/tiny") is None


@pytest.mark.parametrize(
    "node, message",
    [
        ({"models": {"m": {"prefill": -1}}}, "prices.models.m.prefill must be a price per million tokens >= 0"),
        ({"models": {"m": {"input": 1}}}, "prices.models.m: unknown key(s) input; valid: prefill, sample, train"),
        ({"models": ["m"]}, "prices.models must map model names to prices"),
    ],
)
def test_a_malformed_price_table_is_one_line(node, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        table_from(node)


def test_max_cost_on_a_model_without_a_price_is_refused_before_anything_runs(tmp_path):
    from tests.helpers.runs import run_in_process

    with pytest.raises(ConfigError, match=r"training.max_cost: Tinker prices have no price for tinkerx/tiny .*training.max_tokens"):
        run_in_process(["model=tiny", "training.max_cost=1.0", "training.max_steps=1"], tmp_path / "run")


# ---- budgets, on a scripted method -------------------------------------------------------------
class Spender:
    """A method whose every step trains ``per_step`` tokens through the metered service."""

    name = "spender"
    shown = ()

    def __init__(self, total_steps: int, per_step: int = 100) -> None:
        self.total_steps, self.per_step, self.step_index = total_steps, per_step, 0

    def setup(self, p: Pipeline, resume: Any = None) -> None:
        self.p = p
        if resume is not None:
            self.step_index = resume.method_state["step_index"]

    def start(self) -> dict[str, Any]:
        self.p.service.meter.add("sample", 10)  # a baseline's sampling, recorded at step 0
        return {"baseline/score": 0.0}

    def step(self) -> dict[str, Any]:
        self.p.service.meter.add("train", self.per_step)
        self.step_index += 1
        return {"train/loss": 1.0}

    def save(self, name: str) -> dict[str, str]:
        folder = self.p.run_dir / "checkpoints" / name
        folder.mkdir(parents=True, exist_ok=True)
        return {"policy": str(folder)}

    def state(self) -> dict[str, Any]:
        return {"step_index": self.step_index}

    def summary(self) -> dict[str, Any]:
        return {"steps": self.step_index}

    def finish(self) -> dict[str, Any]:
        return {**self.summary(), "final": {"score": 1.0}}


class _Service:
    def __init__(self, meter: UsageMeter) -> None:
        self.meter = meter


def _life(run_dir: Path, method: Spender, point=None, **budget: Any) -> RunLifecycle:
    training = TrainingSettings(batch_size=1, max_steps=method.total_steps, save_every=0, **budget)
    meter = _meter({TINY: Prices(prefill=1.0, sample=1.0, train=1000.0)})
    pipeline = Pipeline(run_dir=run_dir, seed=0, service=_Service(meter), base_model=TINY, lora_rank=1, tokenizer=None, dataset=None,
                        recorder=RunRecorder(run_dir), optim=OptimSettings(), sampling=SamplingSettings(), training=training)  # fmt: skip
    return RunLifecycle.of(method, pipeline, point)


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_token_budget_stops_after_the_step_that_reaches_it_and_resumes_with_a_larger_one(tmp_path):
    life = _life(tmp_path, Spender(6), max_tokens=250)
    life.begin()
    assert life.drive() == 3  # 10 + 100 + 100 = 210 < 250; step 3 reaches 310
    summary = life.finish()
    assert summary["status"] == "budget_reached" and "training.max_tokens=250" in summary["budget"] and "final" not in summary
    assert summary["usage"]["total_tokens"] == 310 and run_status(tmp_path) == "budget_reached"
    assert [p.name for p in resume_points.points(tmp_path)] == ["step_000003"]

    point = resume_points.latest_point(tmp_path, warn=print)
    resumed = _life(tmp_path, Spender(6), point, max_tokens=10_000)
    resumed.begin()
    assert resumed.drive() == 3
    final = resumed.finish()
    assert final["status"] == "finished" and final["usage"]["total_tokens"] == 610
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5, 6]
    assert [r["usage/total_tokens"] for r in rows] == [10, 110, 210, 310, 410, 510, 610]


def test_a_cost_budget_stops_the_run_too(tmp_path):
    life = _life(tmp_path, Spender(10), max_cost=0.25)  # $0.1 a step at $1000 per million trained
    life.begin()
    assert life.drive() == 3
    assert life.finish()["status"] == "budget_reached"
    assert _rows(tmp_path)[-1]["usage/total_cost_usd"] == pytest.approx(0.30001)


# ---- end to end, on tiny ------------------------------------------------------------------------
def test_an_sft_run_records_its_tokens_and_its_sampled_tokens_match_its_evaluations(tmp_path):
    from tests.helpers.runs import run_in_process

    run = tmp_path / "run"
    overrides = ["experiment=sft_tiny_arithmetic", "training.max_steps=3", "training.batch_size=8", "evaluator.max_examples=16",
                 "method.validation_examples=8"]  # fmt: skip
    summary = run_in_process(overrides, run)
    usage = summary["usage"]
    rows = _rows(run)
    # SFT samples only when it evaluates: every sampled token is one of an evaluation's replies.
    replies = [json.loads(line) for name in ("baseline", "final") for line in (run / "eval" / f"{name}.jsonl").read_text().splitlines()]
    assert usage["sample_tokens"] == sum(r["num_tokens"] for r in replies) > 0
    assert usage["train_tokens"] == sum(r["usage/train_tokens"] for r in rows) > 0
    assert rows[-1]["usage/total_tokens"] + _final_evaluation_tokens(run, replies) == usage["total_tokens"]
    assert usage["cost"].startswith("unknown") and usage["by_model"] == {TINY: {k: usage[k] for k in ("prefill_tokens", "sample_tokens", "train_tokens")}}


def _final_evaluation_tokens(run: Path, replies: list[dict]) -> int:
    """The final evaluation runs after the last step's line: its prompts (16, prefilled) and replies."""
    from tinkerx.chat import prompt_tokens
    from tinkerx.models.tiny import TinyModel

    tokenizer = TinyModel().load_tokenizer()
    final = [json.loads(line) for line in (run / "eval" / "final.jsonl").read_text().splitlines()]
    prompts = sum(len(prompt_tokens(tokenizer, [{"role": "user", "content": r["question"]}])) for r in final)
    return prompts + sum(r["num_tokens"] for r in final)


def test_a_tiny_run_stopped_by_its_budget_resumes_with_a_larger_one(tmp_path):
    from tests.helpers.runs import run_in_process
    from tinkerx.resume import resume_run

    run = tmp_path / "run"
    overrides = ["experiment=sft_tiny_arithmetic", "training.max_steps=4", "training.batch_size=8", "evaluator.max_examples=8",
                 "method.validation_examples=8", "training.max_tokens=1"]  # fmt: skip
    stopped = run_in_process(overrides, run)
    assert stopped["status"] == "budget_reached" and [r["step"] for r in _rows(run)] == [1]
    assert [p.name for p in resume_points.points(run)] == ["step_000001"] and not (run / "eval" / "final.jsonl").exists()
    with pytest.raises(Exception, match="cannot change when resuming"):
        resume_run(run, ["training.batch_size=4"])
    finished = resume_run(run, ["training.max_tokens=100000000"])
    rows = _rows(run)
    assert finished["status"] == "finished" and [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["usage/total_tokens"] == sum(r["usage/prefill_tokens"] + r["usage/sample_tokens"] + r["usage/train_tokens"] for r in rows)

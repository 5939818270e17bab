"""Every method is a ``tinkerx.pipeline.Method``: what front doors call works the same way on each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import compose
from tinkerx.build import build
from tinkerx.errors import UserError
from tinkerx.methods.debate import Debate
from tinkerx.methods.distill.off_policy import OffPolicyDistill
from tinkerx.methods.distill.on_policy import OnPolicyDistill
from tinkerx.methods.dpo import DPO
from tinkerx.methods.eval import Evaluate
from tinkerx.methods.grpo import GRPO
from tinkerx.methods.sft import SFT
from tinkerx.pipeline import Method
from tinkerx.driver import drive

METHODS = (SFT, GRPO, DPO, OnPolicyDistill, OffPolicyDistill, Debate, Evaluate)
PROTOCOL_CALLS = sorted(name for name, value in vars(Method).items() if callable(value) and not name.startswith("_"))
TINY = ["model=tiny", "dataset=arithmetic", "evaluator.max_examples=4", "sampling.max_tokens=4", "training.batch_size=4", "training.save_every=0"]


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_every_method_defines_every_call_of_the_protocol(cls):
    assert {"sampling_client", "load", "saved_checkpoints", "finish", "evaluate"} <= set(PROTOCOL_CALLS)
    missing = [name for name in PROTOCOL_CALLS if not callable(getattr(cls, name, None))]
    assert missing == [], f"{cls.__name__} lacks {missing}"
    assert not hasattr(cls, "run")  # one shape: no second, undeclared entry point


def _built(tmp_path: Path, overrides: list[str]):
    method, p, closers = build(compose([*TINY, *overrides]), tmp_path / "run")
    return method, p, closers


def test_sft_load_puts_back_the_saved_state_and_sampling_client_samples_it(tmp_path):
    method, p, _ = _built(tmp_path, ["method=sft", "training.max_steps=3", "optim.lr=3e-3", "method.validation_every=0"])
    method.setup(p)

    def loss() -> float:
        return method._mean_loss(method.client, method.train[:8])

    method.step()
    saved, after_one = method.save("after_one")["policy"], loss()
    method.step()
    method.step()
    assert loss() != after_one
    method.load(saved, with_optimizer=True)
    assert loss() == after_one
    assert method.saved_checkpoints() == []
    sequences = method.sampling_client().sample(method.train[0].model_input, 2, p.sampling.params()).result().sequences
    assert len(sequences) == 2


def test_grpo_stopped_before_its_last_step_evaluates_at_finish_and_lists_its_best_checkpoints(tmp_path):
    # A driver that steps on request (an agent over MCP) may finish after 2 of 5 steps, before the
    # held-out schedule's last evaluation: finish evaluates the weights the run ends with.
    method, p, _ = _built(tmp_path, ["method=grpo", "training.max_steps=5", "training.eval_every=1", "method.group_size=2",
                                     "method.groups_per_batch=2", "method.checkpoint_threshold=-1", "method.evaluate_baseline=false"])  # fmt: skip
    method.setup(p)
    method.step()
    method.step()
    saved = method.saved_checkpoints()
    assert saved[0]["name"] == "auto_step_000001" and Path(saved[0]["path"]).is_dir()  # the first evaluation is a new best
    assert method.summary()["auto_checkpoints"] == [{k: v for k, v in c.items() if k != "name"} for c in saved]
    summary = method.finish()
    assert (p.run_dir / "eval" / "final.jsonl").is_file() and summary["final"] == method.evaluate("again")
    assert summary["steps"] == 2


def test_grpo_run_to_its_end_does_not_evaluate_twice(tmp_path):
    method, p, _ = _built(tmp_path, ["method=grpo", "training.max_steps=1", "method.group_size=2", "method.groups_per_batch=2",
                                     "method.evaluate_baseline=false"])  # fmt: skip
    summary = drive(method, p)
    assert summary["status"] == "finished" and sorted(f.name for f in (p.run_dir / "eval").iterdir()) == ["step_000001.jsonl"]


def test_eval_is_driven_like_any_method_with_no_steps(tmp_path):
    method, p, closers = _built(tmp_path, ["method=eval", "suite=dataset"])
    summary = drive(method, p)
    for c in closers:
        c.close()
    assert (method.total_steps, method.step_index, summary["status"]) == (0, 0, "finished")
    assert json.loads(Path(summary["results"]).read_text())["benchmarks"]["arithmetic"]["metrics"] == summary["final"]
    assert (p.run_dir / "eval" / "arithmetic.jsonl").is_file() and method.save("x") == {} and method.saved_checkpoints() == []
    with pytest.raises(UserError, match="method.checkpoint"):
        method.load("somewhere")
    with pytest.raises(UserError, match="no training steps"):
        method.step()

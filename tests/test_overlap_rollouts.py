"""Overlapped rollouts: the next step's samples are sent before each update, one update old at most,
and the local rollout worker samples them while the trained model trains."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest
from tinker import types

from tests.helpers.data import EASY
from tests.helpers.resume import GRPO, resume, run_until_killed
from tests.helpers.runs import metrics_rows, run_in_process

OVERLAP = ["method=grpo", "training.max_steps=4", "training.batch_size=4", "method.group_size=4", "method.evaluate_baseline=false",
           "training.eval_every=0", "evaluator.max_examples=4", "method.overlap_rollouts=true", "sampling.max_tokens=2", "optim.lr=1e-3", *EASY]


def _overlap(tmp_path: Path) -> list[str]:
    """OVERLAP with a reward a random tiny model earns about half the time: signal, so updates, every step."""
    coin = tmp_path / "ascii_first.py"
    coin.write_text("def compute_reward(completion, ground_truth):\n    return float(completion.encode()[:1] < b'\\x80')\n")
    return [*OVERLAP, "reward=python", f"reward.path={coin}"]


def _stripped(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in metrics_rows(run_dir)]


def test_overlapped_batches_are_one_update_old_and_trained_with_the_samplers_logprobs(tmp_path):
    overrides = _overlap(tmp_path)
    run_in_process(overrides, tmp_path / "shared_model")
    rows = [r for r in metrics_rows(tmp_path / "shared_model") if "sample/staleness" in r]
    assert len(rows) == 4
    # The first batch is sampled on the spot; every later one went out before the previous update.
    assert rows[0]["sample/staleness"] == 0
    updated = [r.get("train/datums", 0) > 0 for r in rows]
    for previous_update, row in zip(updated, rows[1:]):
        assert row["sample/staleness"] == (1 if previous_update else 0)
    assert any(r["sample/staleness"] == 1 for r in rows), "the test needs an update between a launch and its training"
    # On-policy the trainer's logprobs equal the sampler's (ratio 1); a batch one update old is
    # trained against the logprobs of the weights that sampled it, so the ratio -- the importance
    # correction -- sees the update.
    trained = [r for r in rows if r.get("train/datums")]
    assert all(abs(r["train/kl_sampler_trainer"]) < 1e-4 for r in trained if r["sample/staleness"] == 0)
    stale = [r["train/kl_sampler_trainer"] for r in trained if r["sample/staleness"] == 1]
    assert stale and any(abs(kl) > 1e-4 for kl in stale)

    # The rollout worker (a model copy sampling on its own thread) changes timing only: the same
    # seeds and weights give the same samples, rewards and updates.
    # (Float metrics computed from the sampler's logprobs agree to float rounding: the copy's
    # forwards may round differently in the last bits.)
    run_in_process([*overrides, "backend.rollout_device=cpu"], tmp_path / "rollout_worker")
    for worker_row, row in zip(_stripped(tmp_path / "rollout_worker"), _stripped(tmp_path / "shared_model"), strict=True):
        assert worker_row.keys() == row.keys()
        for key, value in row.items():
            assert worker_row[key] == (value if isinstance(value, int) or "reward" in key else pytest.approx(value, rel=1e-4, abs=1e-6)), key


def test_overlap_is_off_by_default_and_keeps_runs_on_policy(tmp_path):
    run_in_process([o for o in _overlap(tmp_path) if not o.startswith("method.overlap_rollouts")] + ["training.max_steps=2"], tmp_path / "run")
    rows = [r for r in metrics_rows(tmp_path / "run") if "reward/mean" in r]
    assert rows and all("sample/staleness" not in r for r in rows)
    assert all(abs(r["train/kl_sampler_trainer"]) < 1e-4 for r in rows if r.get("train/datums"))


def test_rollout_worker_samples_while_the_trainer_is_busy(tmp_path):
    from tinkerx.backends.local import LocalBackend
    from tinkerx.backends.local.rollout_worker import RolloutEngine
    from tinkerx.chat import prompt_tokens
    from tinkerx.models.tiny import TinyModel

    backend = LocalBackend(device="cpu", rollout_device="cpu")
    service = backend.open([TinyModel()], tmp_path, seed=0)
    release = threading.Event()
    try:
        client = service.create_lora_training_client("tinkerx/tiny", rank=4, seed=0).result()
        tok = client.get_tokenizer()
        prompt = types.ModelInput.from_ints(prompt_tokens(tok, [{"role": "user", "content": "12+35="}]))
        params = types.SamplingParams(max_tokens=6, temperature=1.0, seed=7)
        sampler = client.save_weights_and_get_sampling_client()
        assert isinstance(sampler.engine, RolloutEngine) and sampler.engine is not client.engine
        # Frozen base weights are one tensor in both models; the LoRA adapters are the copy's own.
        trained = dict(client.engine.model.named_parameters())
        for name, param in sampler.engine.model.named_parameters():
            assert (param.data_ptr() == trained[name].data_ptr()) == (not trained[name].requires_grad), name

        busy = service.submit(release.wait)  # the trainer's worker is now blocked
        threads: list[str] = []
        sampler._submit(lambda: threads.append(threading.current_thread().name)).result(timeout=30)
        seqs = sampler.sample(prompt, 3, params).result(timeout=60).sequences
        assert not busy.done() and threads[0].startswith("tinkerx-rollout")
        release.set()

        # A training step later, the copy samples the new weights, exactly as the trained model does.
        datum = types.Datum(model_input=types.ModelInput.from_ints(prompt.to_ints()[:-1]),
                            loss_fn_inputs={"target_tokens": prompt.to_ints()[1:], "weights": [1.0] * (prompt.length - 1)})
        client.forward_backward([datum], "cross_entropy").result()
        client.optim_step(types.AdamParams(learning_rate=5e-2)).result()
        after = client.save_weights_and_get_sampling_client().sample(prompt, 3, params).result().sequences
        service.rollout_device = None  # the next sampling client samples on the trained model itself
        reference = client.save_weights_and_get_sampling_client().sample(prompt, 3, params).result().sequences
        assert [s.tokens for s in after] == [s.tokens for s in reference]
        flat = lambda seqs: [lp for s in seqs for lp in s.logprobs]  # noqa: E731
        assert flat(after) == pytest.approx(flat(reference), abs=1e-5)
        assert flat(after) != pytest.approx(flat(seqs), abs=1e-3)  # the weights did move
    finally:
        release.set()
        backend.close()


def test_bad_rollout_device_is_one_line(tmp_path):
    from tests.conftest import run_cli

    result = run_cli(["method=grpo", "backend.rollout_device=gpu9", "training.max_steps=1", f"hydra.run.dir={tmp_path / 'run'}"])
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "backend.rollout_device" in result.stderr and "valid" in result.stderr, result.stderr[-500:]


@pytest.mark.slow
def test_an_overlapped_run_killed_and_resumed_trains_every_step_on_the_same_prompts(tmp_path):
    """A resume point does not hold rollouts in flight: the resumed run samples that step's prompts
    again (with the weights it resumed with) -- no prompt is skipped, no step lost."""
    args = [*GRPO, "method.overlap_rollouts=true"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert run_until_killed(args, reference).returncode == 0
    result = run_until_killed(args, killed, "step:5")
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def prompts_by_step(run_dir: Path) -> dict[int, list[str]]:
        steps: dict[int, list[str]] = {}
        for line in (run_dir / "samples.jsonl").read_text().splitlines():
            row = json.loads(line)
            steps.setdefault(row["step"], []).append(row["id"])
        return steps

    assert prompts_by_step(killed) == prompts_by_step(reference)
    assert [r["step"] for r in metrics_rows(killed)] == [r["step"] for r in metrics_rows(reference)]

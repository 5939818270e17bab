"""``reward=judge`` and ``evaluator.judges`` through every front door, on the tiny model: GRPO on the
local backend and through the Tinker SDK against the local server, a killed run resumed (its
judgments read back, not asked again), MCP's ``init_grpo``, ``method=eval`` against an endpoint,
and the one-line errors for a broken rubric and an unreachable judge endpoint."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import compose, run_cli
from tests.helpers.resume import resume, run_until_killed
from tests.helpers.tinker_server import run_with_key

pytestmark = pytest.mark.slow

# A short rubric: the tiny model's context is 512 tokens, and the shipped ones' few-shot examples are longer.
RUBRIC = 'question: Does the reply give the right answer?\nlabels: ["Yes", "No"]\nshow_reference: true\nverdict_prefix: "Verdict:"\n'
TINY_GRPO = ["method=grpo", "model=tiny", "dataset=arithmetic", "dataset.train_size=40", "dataset.test_size=4", "sampling.max_tokens=6",
             "training.batch_size=2", "method.group_size=2", "evaluator.max_examples=4", "training.eval_every=0", "reward=judge"]  # fmt: skip


@pytest.fixture
def rubric(tmp_path) -> str:
    path = tmp_path / "right_answer.yaml"
    path.write_text(RUBRIC)
    return str(path)


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _judgments(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "judgments.jsonl").read_text().splitlines()]


def test_grpo_with_a_judge_reward_on_the_local_backend(tmp_path, rubric):
    run_dir = tmp_path / "run"
    result = run_cli([*TINY_GRPO, f"reward.judge.rubric={rubric}", "training.max_steps=2", f"evaluator.judges=[{rubric}]",
                      f"hydra.run.dir={run_dir}"])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [m for m in _metrics(run_dir) if m["step"] > 0]
    assert [m["step"] for m in steps] == [1, 2]
    # 2 prompts x 2 samples judged a step (the reference checks and evaluations are not rollouts).
    assert [m["judge/right_answer/judged"] for m in steps] == [4, 4] and steps[-1]["judge/right_answer/unparsed"] == 0
    judged = _judgments(run_dir)
    assert {j["rubric"] for j in judged} == {"right_answer"}
    assert all(j["judge"].startswith("tinkerx/tiny|logprobs") and 0.0 <= j["judgment"]["score"] <= 1.0 for j in judged)
    records = [json.loads(line) for line in (run_dir / "eval" / "step_000002.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all("judge/right_answer" in r for r in records)  # every reply with its judgment
    final = json.loads((run_dir / "summary.json").read_text())["final"]
    assert {"judge/right_answer/rate", "accuracy", "numeric_match"} <= set(final)
    # The reward's pass rate is the judged rate: evaluator.judges with the reward's own rubric reads
    # the same cached judgments (each reply judged once).
    assert final["accuracy"] == final["judge/right_answer/rate"]
    assert len({j["key"] for j in judged}) == len(judged)


def test_grpo_with_a_judge_reward_through_the_tinker_sdk(tinker_server, tmp_path, rubric):
    run_dir = tmp_path / "run"
    result = run_with_key([*TINY_GRPO, f"reward.judge.rubric={rubric}", "training.max_steps=1", "backend=tinker",
                           f"backend.base_url={tinker_server}"], run_dir)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [step] = [m for m in _metrics(run_dir) if m["step"] > 0]
    assert step["judge/right_answer/judged"] == 4 and step["judge/right_answer/errors"] == 0
    assert all(j["judge"].startswith("tinkerx/tiny|logprobs") for j in _judgments(run_dir))  # label logprobs through the SDK
    assert "compute_logprobs" in (run_dir / "http_traffic.yaml").read_text() or "asample" in (run_dir / "http_traffic.yaml").read_text()


def test_a_resumed_run_reads_its_judgments_back_instead_of_asking_again(tmp_path, rubric):
    run_dir = tmp_path / "run"
    args = [*TINY_GRPO, f"reward.judge.rubric={rubric}", "training.max_steps=3", "training.save_every=1", "seed=3"]
    killed = run_until_killed(args, run_dir, "step:2")  # step 2 computed (and judged), not recorded
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    before = [j["key"] for j in _judgments(run_dir)]
    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = [j["key"] for j in _judgments(run_dir)]
    # The resumed process redoes step 2 with the same samples and checks the reward on the same
    # references: had it asked the judge again, those judgments would be appended a second time.
    assert after[: len(before)] == before and len(after) == len(set(after)) and len(after) > len(before)
    assert [m["step"] for m in _metrics(run_dir)] == [0, 1, 2, 3]
    assert all(m["judge/right_answer/judged"] == 4 for m in _metrics(run_dir) if m["step"] > 0)


def test_mcp_init_grpo_with_a_judge_reward(tmp_path):
    from tests.helpers.mcp import write_addition
    from tinkerx.mcp.session import TrainingSession

    train = write_addition(tmp_path / "train.jsonl", 16, seed=0)
    session = TrainingSession(tmp_path / "session", ["model=tiny", "backend=local"])
    started = session.init_grpo(prompts_path=str(train), reward="judge", group_size=2, groups_per_batch=2, max_tokens=4, max_steps=1, eval_every=0)
    assert started["method"] == "grpo" and len(started["reward_check"]["scores"]) == 4
    assert all(0.0 <= s <= 1.0 for s in started["reward_check"]["scores"])
    trained = session.train_grpo_step(iterations=1)
    assert trained["iterations"] and (session.dir / "run01_grpo" / "judgments.jsonl").is_file()
    session.finish()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.runner import local_server

    with local_server(TinyModel(), tmp_path_factory.mktemp("serve")) as srv:
        yield srv


def test_method_eval_with_judges_against_an_endpoint(tmp_path, endpoint, rubric):
    from tinkerx.app import run

    overrides = ["method=eval", "suite=dataset", "evaluator.max_examples=4", "sampling.max_tokens=6", "backend=openai",
                 f"backend.base_url={endpoint.url}/v1", "backend.timeout_s=30", f"evaluator.judges=[{rubric}]"]  # fmt: skip
    summary = run(compose(overrides), tmp_path / "run")
    final = summary["final"]
    name = "right_answer"
    # No logprobs through /v1: verdicts are the tiny judge's parsed replies; whatever it says is
    # counted as judged or unparsed, never an error and never a crash.
    assert final[f"judge/{name}/errors"] == 0 and 0.0 <= final[f"judge/{name}/rate"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / "run" / "eval" / "arithmetic.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r[f"judge/{name}"]["outcome"] in ("judged", "unparsed") for r in records)
    assert all("|text|" in j["judge"] for j in _judgments(tmp_path / "run"))


def test_a_rubric_missing_its_labels_is_one_line_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("question: Is it good?\n")
    result = run_cli(["method=eval", f"evaluator.judges=[{bad}]", f"hydra.run.dir={tmp_path / 'run'}"], timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is missing 'labels'" in lines[0], result.stderr


def test_an_unreachable_judge_endpoint_fails_in_one_line_within_its_timeout(tmp_path):
    from tinkerx.serve.runner import free_port

    result = run_cli(["method=eval", "backend=openai", f"backend.base_url=http://127.0.0.1:{free_port()}/v1", "backend.timeout_s=3",
                      "evaluator.judges=[tutoring]", f"hydra.run.dir={tmp_path / 'run'}"], timeout=600)  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "127.0.0.1" in lines[0], result.stderr

"""Debate as an environment (tinkerx/envs/debate.py) and ``method=debate method.training=rl``.

The episode mechanics run on scripted policies over the tiny model's tokenizer (no model); the
training tests run the tiny model on a small synthetic multiple-choice file, the judge reading its
verdict from label probabilities as in a real run.
"""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest
from tinker import types

from tests.helpers.compose import compose
from tests.helpers.resume import DEBATE, DEBATE_CONTEXT, TINY, resume, run_until_killed, summary_without_paths
from tests.helpers.runs import metrics_rows, metrics_without_time, run_in_process
from tests.test_envs import ScriptedPolicy
from tinkerx.build import build
from tinkerx.driver import drive
from tinkerx.envs import EpisodeRunner
from tinkerx.envs.debate import DEBATER_A, DEBATER_B, DEBATERS, JUDGE, DebateGroup, arguments, debate_limits, zero_sum
from tinkerx.envs.episode import trained_tokens
from tinkerx.errors import ConfigError
from tinkerx.methods.debate import Debate
from tinkerx.methods.debate.episodes import DebatePrompts
from tinkerx.methods.debate.rl import debater_data
from tinkerx.methods.debate.transcript import Setup
from tinkerx.methods.shared.policy import base_sampler, policy_sampler

SETUP = Setup("000001_000", "ex-1", "What is 2 + 2?", ("4", "5"), "A", ("A", "C"))


@pytest.fixture(scope="module")
def tokenizer():
    from tinkerx.models.tiny import TinyModel

    return TinyModel(base_model="tinkerx/tiny").load_tokenizer()


def _debate(tokenizer, score, rounds=2, group_size=2, judge_reads=True):
    policies = {
        DEBATER_A: ScriptedPolicy(tokenizer, lambda prompt: "Four holds."),
        DEBATER_B: ScriptedPolicy(tokenizer, lambda prompt: "Five, sure."),
        JUDGE: ScriptedPolicy(tokenizer, lambda prompt: "Winner: A"),
    }
    group = DebateGroup(SETUP, rounds, DebatePrompts(), score, judge_reads)
    params = types.SamplingParams(max_tokens=16, temperature=1.0)
    runner = EpisodeRunner(tokenizer, params, debate_limits(rounds, judge_reads))
    return runner.launch([group], group_size, policies).collect()[0], policies


# --- the environment --------------------------------------------------------------------------------


def test_the_length_check_bounds_every_context_an_episode_reaches(tokenizer):
    """Each role's context (its prompt and what it samples) stays within what the length check counts
    for the question (tinkerx/data/lengths.py): the longest prompt a debate renders plus the turns' budget."""
    from tinkerx.data.lengths import rendered_lengths
    from tinkerx.example import Example

    rounds, max_tokens = 2, 16
    policies = {role: ScriptedPolicy(tokenizer, lambda prompt: "w" * 100) for role in (DEBATER_A, DEBATER_B, JUDGE)}  # every turn max_tokens long
    group = DebateGroup(SETUP, rounds, DebatePrompts(), lambda task, eps: [0.0] * len(eps), True)
    runner = EpisodeRunner(tokenizer, types.SamplingParams(max_tokens=max_tokens, temperature=1.0), debate_limits(rounds, True))
    episodes = runner.launch([group], 2, policies).collect()[0]
    example = Example(question=SETUP.question, answer="A", choices=SETUP.answers, id="ex-1")
    estimate = rendered_lengths(tokenizer, [example], Debate(rounds=rounds, training="rl").length_prompts)[0] + (2 * rounds + 1) * max_tokens
    for e in episodes:
        assert e.outcome == "done" and all(len(t.tokens_T) == max_tokens for t in e.turns)
        assert max(len(t.prompt_T) + len(t.tokens_T) for t in e.turns) <= estimate


def test_roles_take_turns_and_each_debater_trains_only_its_own_sampled_tokens(tokenizer):
    episodes, policies = _debate(tokenizer, lambda task, eps: [0.8, 0.3][: len(eps)])
    for e in episodes:
        assert e.outcome == "done" and [t.role for t in e.turns] == [DEBATER_A, DEBATER_B, DEBATER_A, DEBATER_B, JUDGE]
        assert [(a.side, a.round) for a in arguments(e)] == [("A", 1), ("B", 1), ("A", 2), ("B", 2)]
        for role, other_text in ((DEBATER_A, "Five, sure."), (DEBATER_B, "Four holds.")):
            seen = trained_tokens(e, role)
            own = [tok for turn in e.role_turns(role) for tok in turn.tokens_T]
            assert [tok for tok, m in zip(seen.tokens_T, seen.mask_T) if m] == own  # exactly its sampled tokens, in order
            glue = [tok for tok, m in zip(seen.tokens_T, seen.mask_T) if not m]
            assert other_text in tokenizer.decode(glue)  # the opponent's words reach it as context, masked out
            assert other_text not in tokenizer.decode(own)
        # The judge read the whole debate and wrote the last turn; debater B opened having heard A.
        judge_prompt = tokenizer.decode(e.role_turns(JUDGE)[0].prompt_T)
        assert "Four holds." in judge_prompt and "Five, sure." in judge_prompt
        assert "Four holds." in tokenizer.decode(e.role_turns(DEBATER_B)[0].prompt_T)
    # Each role's turns went to its own policy (alike debates share a request): the judge answered once
    # per debate, each debater twice.
    samples = {role: sum(n for _, n in policy.requests) for role, policy in policies.items()}
    assert samples == {DEBATER_A: 4, DEBATER_B: 4, JUDGE: 2}

    data = debater_data([episodes], {DEBATER_A: "policy", DEBATER_B: "policy"})
    items = data["policy"]
    assert {i["role"] for i in items} == set(DEBATERS) and len(items) == 4  # 2 debates x 2 debaters, the judge never
    for i in items:
        e = episodes[i["debate"]]
        seen = trained_tokens(e, i["role"])
        advantages = i["datum"].loss_fn_inputs["advantages"].tolist()
        n_prompt = len(seen.prompt_T) - 1
        assert advantages[:n_prompt] == [0.0] * n_prompt  # no loss on its opening prompt
        assert advantages[n_prompt:] == pytest.approx([i["advantage"] * m for m in seen.mask_T])  # nor on the glue
        assert i["tokens"] == sum(len(t.tokens_T) for t in e.role_turns(i["role"]))


def test_verdict_rewards_are_zero_sum_and_relative_to_the_group(tokenizer):
    assert zero_sum(0.8) == pytest.approx({DEBATER_A: 0.6, DEBATER_B: -0.6})
    assert zero_sum(0.5) == {DEBATER_A: 0.0, DEBATER_B: 0.0} and zero_sum(None) == {DEBATER_A: 0.0, DEBATER_B: 0.0}
    episodes, _ = _debate(tokenizer, lambda task, eps: [0.8, 0.3], rounds=1)
    for e, p in zip(episodes, (0.8, 0.3)):
        assert e.reward_of(DEBATER_A) == pytest.approx(2 * p - 1) and e.reward_of(DEBATER_A) + e.reward_of(DEBATER_B) == pytest.approx(0.0)
    items = debater_data([episodes], {DEBATER_A: "a", DEBATER_B: "b"})
    a = [i["advantage"] for i in items["a"]]
    b = [i["advantage"] for i in items["b"]]
    assert a == pytest.approx([0.5, -0.5]) and b == pytest.approx([-0.5, 0.5])  # (0.6, -0.4) minus their mean; B's negated
    # A group the judge cannot tell apart carries no signal: nothing to train.
    alike, _ = _debate(tokenizer, lambda task, eps: [0.7, 0.7], rounds=1)
    assert debater_data([alike], {DEBATER_A: "a", DEBATER_B: "b"}) == {}
    # Without the judge's turn (a judge on a model of its own) the episode ends after debater B.
    short, _ = _debate(tokenizer, lambda task, eps: [0.6, 0.6], rounds=1, judge_reads=False)
    assert all([t.role for t in e.turns] == [DEBATER_A, DEBATER_B] and e.outcome == "done" for e in short)


# --- training -------------------------------------------------------------------------------------


def _write_mcq(path: Path, n: int = 30) -> Path:
    rng = random.Random(1)
    with path.open("w") as f:
        for _ in range(n):
            a, b = rng.randint(1, 50), rng.randint(1, 50)
            choices = [str(a + b), str(a + b + 1), str(a + b - 2), str(a * b)]
            f.write(json.dumps({"question": f"What is {a} + {b}?", "choices": choices, "answer": 0}) + "\n")
    return path


def _overrides(tmp_path: Path, *extra: str) -> list[str]:
    return ["method=debate", "model=tiny", DEBATE_CONTEXT, "dataset=mcq_jsonl", f"dataset.path={_write_mcq(tmp_path / 'mcq.jsonl')}", "dataset.validation_size=5",
            "dataset.test_size=5", "method.num_debates=4", "method.rounds=1", "sampling.max_tokens=6", "components.judge.max_tokens=3",
            "training.max_steps=2", "optim.lr=3e-3", "backend.num_threads=1", "seed=5", *extra]  # fmt: skip


RL = ["method.training=rl", "method.num_debates=2", "method.group_size=2", "method.normalize_std=true"]


def _drive(tmp_path: Path, *extra: str):
    """Builds and drives a run; returns its run folder and, per policy, how far its weights moved from the base."""
    method, p, closers = build(compose(_overrides(tmp_path, *extra)), tmp_path / "run")
    try:
        p.recorder.finish(drive(method, p))
        base = base_sampler(p)
        probe = types.ModelInput.from_ints(p.tokenizer.encode("Answer A is correct because", add_special_tokens=False))
        before = base.compute_logprobs(probe).result()[1:]
        moved = {}
        for name, client in method.policies.items():
            after = policy_sampler(client).compute_logprobs(probe).result()[1:]
            moved[name] = (max(abs(x - y) for x, y in zip(before, after)), after)
    finally:
        for c in closers:
            c.close()
    return p.run_dir, moved


def test_rl_steps_change_the_debaters_weights_and_write_the_debate_files(tmp_path):
    run_dir, moved = _drive(tmp_path, *RL)
    assert set(moved) == {"policy"} and moved["policy"][0] > 1e-5, moved  # self-play: one shared policy, trained
    rows = [r for r in metrics_rows(run_dir) if r["step"] >= 1]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["debate/count"] == 4 and r["judge/unparsed_with_debate"] == 0 and r["train/datums"] >= 1
        assert r["reward/debater_a_mean"] == pytest.approx(-r["reward/debater_b_mean"]) and r["episodes/env_error"] == 0
    debates = sorted((run_dir / "debates").glob("debate_*.json"))
    assert len(debates) == 8  # 2 steps x 2 questions x group_size 2
    for path in debates:
        d = json.loads(path.read_text())
        assert [t["speaker"] for t in d["turns"]] == ["A", "B"] and all(len(t["tokens"]) == len(t["logprobs"]) > 0 for t in d["turns"])
        assert 0.0 < d["verdict"]["p_a"] < 1.0 and d["judge_alone"]["winner"] in ("A", "B") and d["debaters"] == {"A": "policy", "B": "policy"}
    record = json.loads((run_dir / "debates" / "training_step_000001.json").read_text())
    assert record["loss_fn"] == "importance_sampling" and {d["role"] for d in record["policies"]["policy"]["datums"]} <= set(DEBATERS)
    episodes = [json.loads(line) for line in (run_dir / "episodes" / "step_000001.jsonl").read_text().splitlines()]
    assert len(episodes) == 4
    for e in episodes:
        assert [t["role"] for t in e["turns"]] == [DEBATER_A, DEBATER_B, JUDGE] and e["outcome"] == "done"
        assert sum(e["role_rewards"].values()) == pytest.approx(0.0)
    summary = json.loads((run_dir / "summary.json").read_text())
    # Judged once per question without a debate, and paired with each of that question's debates.
    assert summary["judge"]["with_debate"]["questions"] == 8 and summary["judge"]["without_debate"]["questions"] == 8
    alone = [json.loads(path.read_text())["judge_alone"] for path in debates]
    assert alone[0] == alone[1] and alone[2] == alone[3]
    assert Path(summary["checkpoints"]["policy"]).is_dir()


def test_two_debater_policies_each_train_on_their_own_role(tmp_path):
    run_dir, moved = _drive(tmp_path, *RL, "method.self_play=false", "training.max_steps=1")
    assert set(moved) == {"debater_a", "debater_b"} and all(m > 1e-5 for m, _ in moved.values()), moved
    assert moved["debater_a"][1] != moved["debater_b"][1]  # two adapters, trained apart
    record = json.loads((run_dir / "debates" / "training_step_000001.json").read_text())
    assert {d["role"] for d in record["policies"]["debater_a"]["datums"]} == {DEBATER_A}
    assert {d["role"] for d in record["policies"]["debater_b"]["datums"]} == {DEBATER_B}
    assert json.loads(next((run_dir / "debates").glob("debate_*.json")).read_text())["debaters"] == {"A": "debater_a", "B": "debater_b"}


# Measured with the code before debate environments existed (same config, this file's data set):
# rejection sampling, the default, must give these metrics still.
REJECTION_SAMPLING_BEFORE = [
    {"judge/p_a_mean": 0.500325065967406, "train/loss": 5.460536956787109, "train/tokens": 24, "train/datums": 4, "judge/accuracy_with_debate": 0.5,
     "judge/accuracy_without_debate": 0.5, "debate/tokens_mean": 12.0, "usage/prefill_tokens": 13471, "usage/train_tokens": 1394},
    {"judge/p_a_mean": 0.5003499304141958, "train/loss": 5.4735056559244795, "train/tokens": 24, "train/datums": 4, "judge/accuracy_with_debate": 0.5,
     "judge/accuracy_without_debate": 0.5, "debate/tokens_mean": 12.0, "usage/prefill_tokens": 13498, "usage/train_tokens": 1398},
]  # fmt: skip


def test_rejection_sampling_metrics_are_unchanged(tmp_path):
    run_in_process(_overrides(tmp_path), tmp_path / "run")
    rows = [r for r in metrics_without_time(tmp_path / "run") if r["step"] >= 1]
    assert len(rows) == 2 and not (tmp_path / "run" / "episodes").exists()
    for row, before in zip(rows, REJECTION_SAMPLING_BEFORE):
        assert {k: row[k] for k in before} == pytest.approx(before, rel=1e-4)


@pytest.mark.slow
def test_debate_rl_killed_and_resumed_equals_the_uninterrupted_run(tmp_path, shared_data):  # the MMLU-STEM file
    args = [*TINY, *DEBATE, "method.training=rl", "method.group_size=2", "method.normalize_std=true"]
    reference = tmp_path / "reference"
    done = run_until_killed(args, reference)
    assert done.returncode == 0, done.stderr[-2000:]
    killed = tmp_path / "killed"
    result = run_until_killed(args, killed, "step:3")
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metrics_without_time(killed) == metrics_without_time(reference)
    assert summary_without_paths(killed) == summary_without_paths(reference)
    for step in range(1, 5):
        name = f"episodes/step_{step:06d}.jsonl"
        assert (killed / name).read_text() == (reference / name).read_text(), name


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method.training=ppo"], "method.training must be one of rejection_sampling, rl"),
        (["method.training=rl", "method.group_size=1"], "method.group_size must be >= 2"),
        (["method.training=rl", "method.rounds=0"], "method.rounds must be >= 1"),
    ],
)
def test_a_bad_debate_env_config_is_a_one_line_error_before_any_step(overrides, message):
    from tinkerx.build import instantiate

    cfg = compose(["method=debate", "model=tiny", *overrides])
    with pytest.raises(ConfigError, match=message) as raised:
        instantiate(cfg.method, "method")
    assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError):
        Debate(training="rl", group_size=0)

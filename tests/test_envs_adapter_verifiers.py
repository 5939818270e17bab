"""``env=verifiers``: environments of the verifiers library run as tinkerx environments, offline.

The environments are verifiers' own classes (``SingleTurnEnv``, ``MultiTurnEnv``, ``Rubric``, its
``XMLParser``) on a small in-memory data set, loaded the way verifiers loads any environment
(``vf.load_environment`` of this module). Skipped when the extra is absent: pip install "tinkerx[verifiers]".
"""

from __future__ import annotations

import json

import pytest
from tinker import types

vf = pytest.importorskip("verifiers", reason='the verifiers extra is not installed: pip install "tinkerx[verifiers]"')

from tests.helpers.compose import compose  # noqa: E402
from tests.helpers.runs import metrics_rows, run_in_process  # noqa: E402
from tests.test_envs import ScriptedPolicy  # noqa: E402
from tinkerx.build import instantiate  # noqa: E402
from tinkerx.envs import EpisodeRunner  # noqa: E402
from tinkerx.envs.episode import trained_tokens  # noqa: E402
from tinkerx.envs.one_turn import POLICY  # noqa: E402
from tinkerx.errors import ConfigError  # noqa: E402

MODULE = __name__


class HigherLower(vf.MultiTurnEnv):
    """Guess the row's number; the environment answers higher/lower until it is found."""

    async def env_response(self, messages, state, **kwargs):
        guess = messages[-1]["content"].strip()
        if guess == state["answer"]:
            state["final_env_response"] = [{"role": "user", "content": "Found it."}]
            return state["final_env_response"]
        hint = "Higher." if guess.isdigit() and int(guess) < int(state["answer"]) else "Lower."
        return [{"role": "user", "content": hint}]


def load_environment(kind: str = "single", n: int = 6):
    from datasets import Dataset

    rows = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, n + 1)]
    parser = vf.XMLParser(["answer"], answer_field="answer")

    def correct(completion, answer, **kwargs) -> float:
        return 1.0 if (parser.parse_answer(completion) or "").strip() == answer else 0.0

    def found(state, **kwargs) -> float:
        return 1.0 if state.get("final_env_response") else 0.0

    if kind == "single":
        rubric = vf.Rubric(funcs=[correct, parser.get_format_reward_func()], weights=[1.0, 0.2])
        return vf.SingleTurnEnv(dataset=Dataset.from_list(rows), eval_dataset=Dataset.from_list(rows[:2]), parser=parser, rubric=rubric,
                                system_prompt="Answer inside <answer></answer>.")  # fmt: skip
    return HigherLower(dataset=Dataset.from_list(rows), rubric=vf.Rubric(funcs=[found]), max_turns=3)


def _spec(*overrides):
    return instantiate(compose(["method=grpo", "env=verifiers", f"env.id={MODULE}", *overrides]).env, "env")


@pytest.fixture(scope="module")
def tokenizer():
    from tinkerx.models.tiny import TinyModel

    return TinyModel(base_model="tinkerx/tiny").load_tokenizer()


def _run(tokenizer, spec, reply, group_size=2):
    runner = EpisodeRunner(tokenizer, types.SamplingParams(max_tokens=24, temperature=1.0), spec.limits)
    return runner.launch([spec.group(spec.train[0])], group_size, {POLICY: ScriptedPolicy(tokenizer, reply)}).collect()[0]


def test_a_single_turn_environment_is_scored_by_its_rubric(tokenizer):
    spec = _spec("env.test_size=2")
    assert len(spec.train) == 6 and len(spec.test) == 2
    row = spec.train[0].row
    answer = row["answer"]
    episodes = _run(tokenizer, spec, lambda prompt: f"<answer>{answer}</answer>")
    for e in episodes:
        assert e.outcome == "done" and len(e.turns) == 1
        assert e.opening[0] == {"role": "system", "content": "Answer inside <answer></answer>."}  # the environment's own prompt
        assert e.reward == pytest.approx(1.2) and e.metrics["correct"] == 1.0  # its rubric: correct + 0.2 x format
    wrong = _run(tokenizer, spec, lambda prompt: "<answer>0</answer>")
    assert all(e.reward == pytest.approx(0.2) and e.metrics["correct"] == 0.0 for e in wrong)


def test_a_multi_turn_environment_answers_between_turns_and_ends_itself(tokenizer):
    spec = _spec("+env.args.kind=multi")
    answer = int(spec.train[0].row["answer"])
    guesses = iter([str(answer - 1), str(answer), str(answer - 1), str(answer)])
    episodes = _run(tokenizer, spec, lambda prompt: next(guesses))
    for e in episodes:
        assert e.outcome == "done" and len(e.turns) == 2 and e.reward == 1.0  # found on the second guess
        assert e.turns[0].observation == [{"role": "user", "content": "Higher."}]
        seen = trained_tokens(e, POLICY)
        assert [t for t, m in zip(seen.tokens_T, seen.mask_T) if m] == e.turns[0].tokens_T + e.turns[1].tokens_T
    never = _run(tokenizer, spec, lambda prompt: "1")
    assert all(e.reward == 0.0 and e.outcome in ("done", "max_turns") and len(e.turns) == 3 for e in never)  # its max_turns=3


def test_grpo_trains_on_a_verifiers_environment(tmp_path):
    run_in_process(["method=grpo", "model=tiny", "env=verifiers", f"env.id={MODULE}", "env.test_size=2", "~reward", "training.max_steps=2",
                    "training.batch_size=2", "method.group_size=2", "sampling.max_tokens=8", "backend.num_threads=1", "training.eval_every=2",
                    "method.samples_per_step=1"], tmp_path / "run")  # fmt: skip
    rows = metrics_rows(tmp_path / "run")
    assert [r["step"] for r in rows][-2:] == [1, 2] and "env/correct" in rows[-1] and "reward/mean" in rows[-1]
    episodes = [json.loads(line) for line in (tmp_path / "run" / "episodes" / "step_000001.jsonl").read_text().splitlines()]
    assert len(episodes) == 2 and all(e["turns"][0]["role"] == POLICY and "format_reward_func" in e["metrics"] for e in episodes)


def test_an_environment_that_does_not_load_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="env.id='no_such_vf_env' did not load") as raised:
        _spec("env.id=no_such_vf_env")
    assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match="env=verifiers needs env.id"):
        instantiate(compose(["method=grpo", "env=verifiers"]).env, "env")


def test_loading_an_environment_keeps_the_runs_signal_handlers():
    """verifiers installs its own SIGINT/SIGTERM handlers (SIGTERM: exit(143) at once) when an environment
    is built; a run's handlers must survive, or a SIGTERM would end it mid-step with no resume point."""
    import signal

    def handler(signum, frame):  # stands in for tinkerx.runs.interrupts.StopRequests
        pass

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _spec()
        assert signal.getsignal(signal.SIGTERM) is handler and signal.getsignal(signal.SIGINT) is handler
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

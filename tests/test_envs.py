"""Episodes (tinkerx/envs): incremental prompts, the runner's limits and outcomes, masked training
tokens, group requests; with a scripted policy (no model) over the tiny model's ChatML tokenizer."""

from __future__ import annotations

import re
import time
from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from tinker import types

from tinkerx.chat import prompt_tokens
from tinkerx.envs import EpisodeLimits, EpisodeRunner, Observation, StepResult
from tinkerx.envs.episode import trained_tokens
from tinkerx.envs.guess_number import GuessNumber
from tinkerx.envs.one_turn import POLICY
from tinkerx.envs.render import continuation, first_prompt
from tinkerx.errors import ConfigError
from tinkerx.methods.shared.rollouts import as_group, rl_datum, score_groups


@pytest.fixture(scope="module")
def tokenizer():
    from tinkerx.models.tiny import TinyModel

    return TinyModel(base_model="tinkerx/tiny").load_tokenizer()


class ScriptedPolicy:
    """A sampling client whose reply is ``reply(decoded prompt)``, ending with the end-of-turn token."""

    def __init__(self, tokenizer, reply, stop=True) -> None:
        self.tokenizer, self.reply, self.stop = tokenizer, reply, stop
        self.requests: list[tuple[int, int]] = []  # (prompt length, num_samples) of every request

    def sample(self, prompt, num_samples, sampling_params):
        tokens = prompt.to_ints()
        self.requests.append((len(tokens), num_samples))
        text = self.reply(self.tokenizer.decode(tokens))
        out = self.tokenizer.encode(text, add_special_tokens=False)[: sampling_params.max_tokens - 1] + ([self.tokenizer.eos_token_id] if self.stop else [])
        seqs = [SimpleNamespace(tokens=out, logprobs=[-0.5] * len(out), stop_reason="stop" if self.stop else "length") for _ in range(num_samples)]
        future: Future = Future()
        future.set_result(SimpleNamespace(sequences=seqs))
        return future


def binary_search(prompt: str) -> str:
    low, high = 1, 10
    for guess, feedback in re.findall(r"assistant\n(\d+)<\|im_end\|>\n<\|im_start\|>user\n(Higher|Lower)", prompt):
        low, high = (int(guess) + 1, high) if feedback == "Higher" else (low, int(guess) - 1)
    return str((low + high) // 2)


def params(max_tokens=8):
    return types.SamplingParams(max_tokens=max_tokens, temperature=1.0)


def run(tokenizer, groups, policy, limits=EpisodeLimits(max_turns=4), group_size=2, max_tokens=8):
    return EpisodeRunner(tokenizer, params(max_tokens), limits).launch(groups, group_size, {POLICY: policy}).collect()


# --- prompts: the previous prompt + sampled tokens + only the new tokens ---------------------------


@pytest.mark.parametrize("stopped", [True, False])
def test_next_prompt_is_the_templates_rendering_without_retokenizing(tokenizer, stopped):
    opening = [{"role": "user", "content": "Guess."}]
    reply_T = tokenizer.encode("7", add_special_tokens=False) + ([tokenizer.eos_token_id] if stopped else [])
    conversation = [*opening, {"role": "assistant", "content": "7"}]
    feedback = [{"role": "user", "content": "Lower."}]
    # A reply cut before its end-of-turn token gets the template's end-of-turn from the continuation.
    got = first_prompt(tokenizer, opening) + reply_T + continuation(tokenizer, conversation, reply_T, feedback)
    assert got == prompt_tokens(tokenizer, conversation + feedback)


def test_a_template_that_rewrites_earlier_turns_is_a_config_error(tokenizer):
    class Rewriting:
        chat_template = "x"
        eos_token_id = tokenizer.eos_token_id

        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            return "".join(m["content"] for m in reversed(messages))  # earlier turns move once later ones follow

    with pytest.raises(ConfigError, match="renders earlier turns differently"):
        continuation(Rewriting(), [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], [1], [{"role": "user", "content": "c"}])


# --- a whole episode: turns, rewards, masks ---------------------------------------------------------


def test_binary_search_wins_guess_number_and_only_its_own_tokens_are_trained(tokenizer):
    spec = GuessNumber(low=1, high=10, train_size=3, test_size=0, seed=1, max_turns=4)
    policy = ScriptedPolicy(tokenizer, binary_search)
    episodes = run(tokenizer, [spec.group(t) for t in spec.train], policy)
    for task, group in zip(spec.train, episodes):
        for e in group:
            assert e.outcome == "done" and e.reward == 1.0 and e.metrics["success"] == 1.0, (task, e)
            assert int(e.turns[-1].text) == task.secret and 1 <= len(e.turns) <= 4
            for previous, turn in zip(e.turns, e.turns[1:]):  # each prompt extends the last prompt + reply
                assert turn.prompt_T[: len(previous.prompt_T) + len(previous.tokens_T)] == previous.prompt_T + previous.tokens_T
    e = next(e for g in episodes for e in g if len(e.turns) >= 2)
    seen = trained_tokens(e, POLICY)
    assert seen.prompt_T == e.turns[0].prompt_T
    sampled = [t for turn in e.turns for t in turn.tokens_T]
    assert [t for t, m in zip(seen.tokens_T, seen.mask_T) if m] == sampled  # mask 1 exactly on sampled tokens
    assert sum(1 for m in seen.mask_T if not m) > 0  # the feedback and template tokens between turns
    assert seen.prompt_T + seen.tokens_T == e.turns[-1].prompt_T + e.turns[-1].tokens_T


def test_guess_number_demonstrations_read_the_feedback_and_open_in_the_middle_or_at_low():
    everyone_binary = GuessNumber(low=1, high=15, train_size=60, test_size=5, seed=2, max_turns=4)
    mixed = GuessNumber(low=1, high=15, train_size=60, test_size=5, seed=2, max_turns=4, demo_binary_share=0.25)
    assert mixed.train == everyone_binary.train and mixed.test == everyone_binary.test  # the share never moves a secret
    low_openings = 0
    for task in mixed.train:
        binary = [int(m["content"]) for m in everyone_binary.demonstration(task) if m["role"] == "assistant"]
        assert binary[0] == 8 and binary[-1] == task.secret and len(binary) <= 4  # binary search finds 1..15 in 4
        guesses = [int(m["content"]) for m in mixed.demonstration(task) if m["role"] == "assistant"]
        low_openings += guesses[0] == 1
        assert guesses[0] in (1, 8) and (guesses == binary or guesses[0] == 1)
        for before, after in zip(guesses, guesses[1:]):  # every later guess goes the way the feedback said
            assert (after > before) == (task.secret > before)
    assert 35 <= low_openings <= 55  # about 75% of 60 games
    messages = mixed.demonstration(mixed.train[0])
    assert messages[0]["content"].startswith("I am thinking of a number between 1 and 15")
    assert [m["role"] for m in messages[:3]] == ["user", "assistant", "user"] and messages[2]["content"] in ("Higher.", "Lower.")
    with pytest.raises(ConfigError, match=r"env.demo_binary_share must be in \[0, 1\], got 1.5"):
        GuessNumber(demo_binary_share=1.5)


def test_datum_pushes_only_sampled_tokens(tokenizer):
    spec = GuessNumber(low=1, high=10, train_size=1, test_size=0, seed=1)
    secret = spec.train[0].secret
    first_guess = "1" if secret != 1 else "2"  # guess wrong first in one episode, right at once in the other
    replies = iter([first_guess, str(secret)] * 10)
    episodes = run(tokenizer, [spec.group(spec.train[0])], ScriptedPolicy(tokenizer, lambda p: next(replies)), group_size=1)
    group = as_group(spec.group(spec.train[0]), episodes[0])
    score_groups([group], reward=None)
    sample = group.samples[0]
    assert sample.reward == 1.0 and sample.mask_T is not None
    sample.advantage = 0.5
    inputs = rl_datum(group.prompt_T, sample).loss_fn_inputs
    advantages = inputs["advantages"].tolist()[len(group.prompt_T) - 1 :]
    assert advantages == [0.5 * m for m in sample.mask_T]


def test_a_group_shares_one_request_per_distinct_prompt(tokenizer):
    spec = GuessNumber(low=1, high=10, train_size=3, test_size=0, seed=1, max_turns=1)
    policy = ScriptedPolicy(tokenizer, lambda p: "5")
    run(tokenizer, [spec.group(t) for t in spec.train], policy, spec.limits, group_size=4)
    assert [n for _, n in policy.requests] == [4, 4, 4]  # one request of 4 samples per task, as GRPO sends today


# --- the runner's limits and failures: recorded outcomes, never a dead run -------------------------


class Scripted:
    """An environment built from a step function, for the failure cases."""

    def __init__(self, step) -> None:
        self._step = step

    def initial_observation(self):
        return Observation(POLICY, [{"role": "user", "content": "Go."}])

    def step(self, role, text):
        return self._step(text)


class Group:
    roles = (POLICY,)

    def __init__(self, step, task="t") -> None:
        self.step, self.task = step, task

    def make_envs(self, n):
        return [Scripted(self.step) for _ in range(n)]

    def group_rewards(self, episodes):
        return [0.0] * len(episodes)


def again(text):
    return StepResult(reward=0.1, next=Observation(POLICY, [{"role": "user", "content": "Again."}]))


def boom(text):
    raise RuntimeError("the environment broke")


def hang(text):
    time.sleep(5)
    return StepResult(done=True)


@pytest.mark.parametrize(
    "step, limits, outcome, turns",
    [(again, EpisodeLimits(max_turns=3), "max_turns", 3),
     (boom, EpisodeLimits(max_turns=3), "env_error", 1),
     (hang, EpisodeLimits(max_turns=3, timeout_s=0.3), "timeout", 1),
     (again, EpisodeLimits(max_turns=50, max_tokens=120), "token_budget", None)],
)  # fmt: skip
def test_limits_and_failures_end_the_episode_with_a_recorded_outcome(tokenizer, step, limits, outcome, turns):
    fine = Group(lambda text: StepResult(reward=1.0, done=True), task="fine")
    started = time.perf_counter()
    bad, good = run(tokenizer, [Group(step), fine], ScriptedPolicy(tokenizer, lambda p: "ok"), limits)
    assert time.perf_counter() - started < 4  # a hung step does not hold the run
    assert all(e.outcome == outcome for e in bad)
    if turns is not None:
        assert all(len(e.turns) == turns for e in bad)
    if outcome == "env_error":
        assert "RuntimeError: the environment broke" in bad[0].error
    if outcome == "token_budget":
        assert all(len(t.prompt_T) + len(t.tokens_T) <= 120 for e in bad for t in e.turns)
    if outcome == "max_turns":
        assert bad[0].reward == pytest.approx(0.3)  # per-turn rewards add up
    assert all(e.outcome == "done" and e.reward == 1.0 for e in good)  # the other task is untouched


def test_a_role_without_policy_and_a_failing_group_are_recorded(tokenizer):
    other = Group(lambda text: StepResult(next=Observation("judge", [{"role": "user", "content": "?"}])))
    episodes = run(tokenizer, [other], ScriptedPolicy(tokenizer, lambda p: "ok"))[0]
    assert all(e.outcome == "env_error" and "role 'judge' has no policy" in e.error for e in episodes)

    class Broken(Group):
        def make_envs(self, n):
            raise ValueError("no envs")

    episodes = run(tokenizer, [Broken(again)], ScriptedPolicy(tokenizer, lambda p: "ok"))[0]
    assert len(episodes) == 2 and all(e.outcome == "env_error" and "no envs" in e.error and not e.turns for e in episodes)
    episodes = run(tokenizer, [Group(lambda text: None)], ScriptedPolicy(tokenizer, lambda p: "ok"))[0]
    assert all(e.outcome == "env_error" and "step returned NoneType, not a StepResult" in e.error and len(e.turns) == 1 for e in episodes)


@pytest.mark.parametrize("overrides, message", [(["env.high=1"], "env.high must be above env.low"), (["env.max_turns=0"], "env.max_turns must be >= 1")])
def test_an_env_config_that_cannot_be_built_is_a_one_line_config_error(overrides, message):
    from tests.helpers.compose import compose
    from tinkerx.build import instantiate

    cfg = compose(["method=grpo", "env=guess_number", *overrides])
    with pytest.raises(ConfigError, match=message):
        instantiate(cfg.env, "env")

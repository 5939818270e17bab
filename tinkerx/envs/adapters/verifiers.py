"""``env=verifiers``: an environment of the ``verifiers`` library as a tinkerx environment.

verifiers runs a rollout itself against an OpenAI client; here tinkerx's runner drives instead, so
the tokens the policy saw and sampled are recorded as for any tinkerx environment (tokenized once).
The adapter plays verifiers' rollout loop one turn at a time on the environment's own pieces:
``init_state`` + ``setup_state`` from a data set row (its ``prompt`` is the opening), after each
reply a trajectory step, the environment's stop conditions (``is_completed``), and otherwise its
``env_response`` as the next messages (a ``final_env_response`` ends the episode). When a group's
episodes are done its rubric scores them together (``rubric.score_group``, group reward functions
included): the rubric's weighted reward is each episode's reward and its metrics the episode's.

Environments are loaded as verifiers loads them, ``vf.load_environment(env.id, **env.args)``: an
installed environment package (e.g. ``vf-gsm8k``) or any importable module with ``load_environment``.
verifiers' coroutines run on one event loop per environment, one episode at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from tinkerx.envs.one_turn import POLICY
from tinkerx.envs.protocol import Observation, StepResult
from tinkerx.envs.runner import EpisodeLimits
from tinkerx.errors import ConfigError

INSTALL = 'pip install "tinkerx[verifiers]"'


@dataclass(frozen=True)
class Row:
    """One data set row of the environment: what an episode is about."""

    id: str
    row: Mapping[str, Any] = field(hash=False, compare=False)


class _Loop:
    """One event loop for an environment's coroutines (verifiers keeps per-loop state, e.g. semaphores)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)


class VerifiersEpisode:
    def __init__(self, vf_env: Any, loop: _Loop, task: Row) -> None:
        self.vf_env, self.loop, self.task = vf_env, loop, task
        self.state: Any = None
        self.messages: list[dict[str, Any]] = []

    def initial_observation(self) -> Observation:
        state = self.loop.run(self.vf_env.init_state(dict(self.task.row), client=None, model="tinkerx", sampling_args=None))
        self.state = self.loop.run(self.vf_env.setup_state(state))
        prompt = self.state["prompt"]
        if isinstance(prompt, str):
            raise ValueError("verifiers completion-style environments (message_type='completion') are not supported; use a chat one")
        self.messages = [dict(m) for m in prompt]
        return Observation(POLICY, self.messages)

    def step(self, role: str, text: str) -> StepResult:
        reply = [{"role": "assistant", "content": text}]
        step = {"prompt": list(self.messages), "completion": reply, "response": None, "tokens": None, "reward": None, "advantage": None,
                "is_truncated": False, "trajectory_id": self.state["trajectory_id"], "extras": {}}  # fmt: skip
        self.loop.run(self.vf_env.add_trajectory_step(self.state, step))
        self.messages = self.messages + reply
        if self.loop.run(self.vf_env.is_completed(self.state)):
            return self._done()
        new = self.loop.run(self.vf_env.env_response(self.messages, self.state))
        if self.state.get("final_env_response") is not None or self.loop.run(self.vf_env.is_completed(self.state)):
            return self._done()
        new = [new] if isinstance(new, dict) else [dict(m) for m in new]
        self.messages = self.messages + new
        return StepResult(next=Observation(POLICY, new))

    def _done(self) -> StepResult:
        self.loop.run(self.vf_env.render_completion(self.state))
        return StepResult(done=True)


@dataclass
class VerifiersGroup:
    task: Row
    vf_env: Any
    loop: _Loop
    roles: tuple[str, ...] = (POLICY,)
    made: list[VerifiersEpisode] = field(default_factory=list)

    def make_envs(self, n: int) -> list[VerifiersEpisode]:
        self.made = [VerifiersEpisode(self.vf_env, self.loop, self.task) for _ in range(n)]
        return self.made

    def group_rewards(self, episodes: Sequence[Any]) -> list[float]:
        """The rubric's rewards of the group's rollouts, scored together; its metrics become the episodes'."""
        states = [made.state for made in self.made]
        if any(s is None for s in states):
            raise ValueError("an episode of the group never started: nothing to score")
        for s in states:
            if s.get("completion") is None:  # cut by the runner (a limit) before the environment ended it
                self.loop.run(self.vf_env.render_completion(s))
        self.loop.run(self.vf_env.rubric.score_group(states))
        for episode, s in zip(episodes, states):
            for name, value in (s.get("metrics") or {}).items():
                episode.metrics[name] = float(value)
        return [float(s["reward"] or 0.0) for s in states]


class Verifiers:
    """``env=verifiers``: ``id`` names the environment (``vf.load_environment``), ``args`` its arguments."""

    def __init__(self, id: str | None = None, args: Mapping[str, Any] | None = None, train_size: int | None = None, test_size: int = 0, seed: int = 0,
                 max_turns: int = 8, max_tokens: int | None = None, timeout_s: float | None = None) -> None:  # fmt: skip
        if not id:
            raise ConfigError("env=verifiers needs env.id: an installed verifiers environment (e.g. vf-gsm8k) or a module with load_environment")
        if train_size is not None and train_size < 1 or test_size < 0:
            raise ConfigError(f"env.train_size must be >= 1 or null and env.test_size >= 0, got {train_size} and {test_size}")
        try:
            import verifiers as vf
        except ImportError:
            raise ConfigError(f"env=verifiers needs the verifiers library: {INSTALL}") from None
        try:
            with _signal_handlers_kept():
                self.vf_env = vf.load_environment(id, **dict(args or {}))
        except Exception as e:  # a missing package, a bad argument: the user's to fix, before any step
            raise ConfigError(f"env.id={id!r} did not load as a verifiers environment: {type(e).__name__}: {e}".splitlines()[0]) from None
        self.limits = EpisodeLimits(max_turns, max_tokens, timeout_s)
        self.loop = _Loop()
        self.train = _rows(self.vf_env.get_dataset(n=train_size or -1, seed=seed), "train")
        has_eval = getattr(self.vf_env, "eval_dataset", None) is not None or getattr(self.vf_env, "eval_dataset_source", None) is not None
        self.test = _rows(self.vf_env.get_eval_dataset(n=test_size), "test") if test_size and has_eval else []
        if test_size and not has_eval:
            raise ConfigError(f"env.id={id!r} has no evaluation data set: set env.test_size=0")

    def group(self, task: Row) -> VerifiersGroup:
        return VerifiersGroup(task, self.vf_env, self.loop)


def _rows(dataset: Any, split: str) -> list[Row]:
    rows = [dict(r) for r in dataset]
    return [Row(str(r.get("example_id", f"{split}-{i}")) if r.get("example_id") is not None else f"{split}-{i}", r) for i, r in enumerate(rows)]


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Keeps the process's SIGINT / SIGTERM handlers across a verifiers environment's construction.

    verifiers' ``Environment.__post_init__`` installs its own (SIGTERM: tear down, then ``exit(143)``),
    which would replace the run's: a SIGTERM would end the run mid-step with no resume point instead of
    finishing the step and saving (tinkerx.runs.interrupts). Its teardown stays registered with atexit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)

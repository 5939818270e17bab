"""Drives episodes: samples every role's turns, steps the environments, enforces the limits.

Episodes advance in lockstep rounds: each round sends every waiting turn's prompt at once (one
request per distinct prompt of a group, ``n`` samples for ``n`` episodes sharing it), then steps each
environment with what its policy wrote. So a group of one-turn episodes is exactly today's request --
one prompt, ``group_size`` samples -- and a multi-turn batch keeps the backend's batch full.

Limits are the runner's, never an environment's: ``max_turns`` policy turns per episode, a role's
context (prompt + sampled) at most ``max_tokens`` tokens, ``timeout_s`` of wall time per episode
(environment calls run on a watched thread, so a hung tool cannot hold the run). An environment
that raises, a budget overrun or a timeout ends that episode with a recorded outcome; the run goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from tinkerx.chat import decode_completion
from tinkerx.envs.episode import Episode, Turn
from tinkerx.envs.protocol import Env, EnvGroup, Observation, StepResult
from tinkerx.envs.render import continuation, first_prompt
from tinkerx.errors import ConfigError
from tinkerx.rewards.guarded import call_with_timeout, describe_error
from tinkerx.sampler import sample_prompts


@dataclass(frozen=True)
class EpisodeLimits:
    max_turns: int = 1               # policy turns per episode (all roles together)
    max_tokens: int | None = None    # a role's whole context, prompt + sampled; null: only sampling.max_tokens per turn
    timeout_s: float | None = None   # wall time per episode; null: none

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ConfigError(f"env.max_turns must be >= 1, got {self.max_turns}")
        if self.max_tokens is not None and self.max_tokens < 2:
            raise ConfigError(f"env.max_tokens must be >= 2 or null, got {self.max_tokens}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"env.timeout_s must be > 0 or null, got {self.timeout_s}")


@dataclass
class _Live:
    """One episode in progress: its environment, each role's conversation and token context."""

    env: Env
    episode: Episode
    group: int
    started: float
    role: str = ""
    prompt_T: list[int] = field(default_factory=list)   # the acting role's next prompt
    conversations: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    last_prompt: dict[str, list[int]] = field(default_factory=dict)
    last_reply: dict[str, list[int]] = field(default_factory=dict)
    pending: tuple[Any, int] | None = None   # (future of the request, index of this episode's sample in it)
    finished: bool = False
    others_env_s: float = 0.0   # the runner's environment time when this episode started, minus its own since


class EpisodeRunner:
    def __init__(self, tokenizer: Any, params: Any, limits: EpisodeLimits = EpisodeLimits()) -> None:
        self.tokenizer, self.params, self.limits = tokenizer, params, limits

    def launch(self, groups: Sequence[EnvGroup], group_size: int, policies: dict[str, Any]) -> "PendingEpisodes":
        """Builds ``group_size`` environments per group, sends every first turn, returns without waiting."""
        pending = PendingEpisodes(self, list(groups), policies)
        for index, group in enumerate(groups):
            made = pending.call(None, group.make_envs, group_size)
            envs = made if isinstance(made, list) and len(made) == group_size else [None] * group_size
            for env in envs:
                live = _Live(env, Episode(group.task), index, time.perf_counter(), others_env_s=pending.env_s)
                pending.live.append(live)
                if env is None:
                    pending.finish(live, "env_error", describe_error(made) if isinstance(made, BaseException) else "make_envs did not return group_size environments")
                    continue
                observation = pending.call(live, env.initial_observation)
                if isinstance(observation, Observation):
                    live.episode.opening = list(observation.messages)
                    pending.observe(live, observation)
                elif not live.finished:
                    pending.finish(live, "env_error", f"initial_observation returned {type(observation).__name__}, not an Observation")
        pending.send()
        return pending


class PendingEpisodes:
    """Episodes in flight: their first turns are sent; ``collect`` runs them to the end."""

    def __init__(self, runner: EpisodeRunner, groups: list[EnvGroup], policies: dict[str, Any]) -> None:
        self.runner, self.groups, self.policies = runner, groups, policies
        self.live: list[_Live] = []
        # First prompts by their messages: the episodes of a group open alike, rendered once (the
        # chat template is most of a one-turn episode's cost).
        self._opened: dict[tuple, list[int]] = {}
        # Environments are stepped one after another: the seconds spent in any episode's environment
        # calls, so that one episode's slow tool is not charged to the others' timeouts.
        self.env_s = 0.0

    # ---- the loop ----------------------------------------------------------------------------
    def collect(self) -> list[list[Episode]]:
        while any(s.pending for s in self.live):
            results: dict[int, Any] = {}
            for s in self.live:
                if s.pending is None:
                    continue
                future, index = s.pending
                s.pending = None
                if id(future) not in results:
                    results[id(future)] = future.result()
                self._advance(s, results[id(future)].sequences[index])
            self.send()
        by_group: list[list[Episode]] = [[] for _ in self.groups]
        for s in self.live:
            by_group[s.group].append(s.episode)
        for group, episodes in zip(self.groups, by_group):
            rewards = self.call(None, group.group_rewards, episodes)
            if isinstance(rewards, BaseException):
                for e in episodes:  # the group could not be scored: every episode says why, scored 0
                    e.outcome, e.error = "env_error", f"group_rewards: {describe_error(rewards)}"
                continue
            for e, r in zip(episodes, rewards):
                if isinstance(r, Mapping):  # one reward per role (several trained roles, e.g. a debate)
                    e.role_rewards = {role: float(v) for role, v in r.items()}
                else:
                    e.group_reward = float(r)
        return by_group

    def send(self) -> None:
        """One request per distinct prompt of a group (its episodes share the samples), all sent at once."""
        requests: dict[tuple, list[_Live]] = {}
        for s in self.live:
            if not s.finished and s.pending is None and s.prompt_T:
                key = (s.group, s.role, tuple(s.prompt_T), self._max_tokens(s))
                requests.setdefault(key, []).append(s)
        buckets: dict[tuple, list[tuple]] = {}
        for key, members in requests.items():
            buckets.setdefault((key[1], len(members), key[3]), []).append(key)
        for (role, n, max_tokens), keys in buckets.items():
            params = self.runner.params
            if max_tokens != params.max_tokens:
                params = params.model_copy(update={"max_tokens": max_tokens})
            futures = sample_prompts(self.policies[role], [list(k[2]) for k in keys], n, params)
            for key, future in zip(keys, futures):
                for i, s in enumerate(requests[key]):
                    s.pending = (future, i)
                    s.prompt_T = list(key[2])

    def _max_tokens(self, s: _Live) -> int:
        budget = self.runner.limits.max_tokens
        turn = self.runner.params.max_tokens
        return turn if budget is None else min(turn, budget - len(s.prompt_T))

    # ---- one turn ----------------------------------------------------------------------------
    def _advance(self, s: _Live, sequence: Any) -> None:
        tokenizer, limits = self.runner.tokenizer, self.runner.limits
        tokens_T = list(sequence.tokens)
        text = decode_completion(tokenizer, tokens_T)
        turn = Turn(s.role, s.prompt_T, tokens_T, list(sequence.logprobs), sequence.stop_reason, text)
        s.episode.turns.append(turn)
        s.conversations[s.role].append({"role": "assistant", "content": text})
        s.last_prompt[s.role], s.last_reply[s.role], s.prompt_T = s.prompt_T, tokens_T, []
        result = self.call(s, s.env.step, s.role, text)
        if s.finished:
            return
        if not isinstance(result, StepResult):
            self.finish(s, "env_error", f"step returned {type(result).__name__}, not a StepResult")
            return
        turn.reward = float(result.reward)
        for k, v in (result.metrics or {}).items():
            s.episode.metrics[k] = s.episode.metrics.get(k, 0.0) + float(v)
        if result.done:
            self.finish(s, "done")
        elif len(s.episode.turns) >= limits.max_turns:
            self.finish(s, "max_turns")
        elif not isinstance(result.next, Observation):
            self.finish(s, "env_error", "step returned neither done nor the next observation")
        else:
            if result.next.role == s.role:
                turn.observation = list(result.next.messages)
            self.observe(s, result.next)

    def observe(self, s: _Live, observation: Observation) -> None:
        """The acting role's next prompt: its first rendering, or its last prompt + reply + only the new tokens."""
        role = observation.role
        if role not in self.policies:
            self.finish(s, "env_error", f"role {role!r} has no policy; roles with one: {', '.join(self.policies)}")
            return
        conversation = s.conversations.get(role)
        if conversation is None:
            s.conversations[role] = list(observation.messages)
            key = tuple(tuple(sorted(m.items())) for m in observation.messages)
            if key not in self._opened:
                self._opened[key] = first_prompt(self.runner.tokenizer, observation.messages)
            prompt_T = list(self._opened[key])
        else:
            reply_T = s.last_reply[role]
            prompt_T = s.last_prompt[role] + reply_T + continuation(self.runner.tokenizer, conversation, reply_T, observation.messages)
            conversation.extend(observation.messages)
        budget = self.runner.limits.max_tokens
        if budget is not None and len(prompt_T) >= budget:
            self.finish(s, "token_budget")
            return
        if self._out_of_time(s):
            return
        s.role, s.prompt_T = role, prompt_T

    def finish(self, s: _Live, outcome: str, error: str | None = None) -> None:
        s.finished, s.pending, s.prompt_T = True, None, []
        s.episode.outcome, s.episode.error = outcome, error

    def _out_of_time(self, s: _Live) -> bool:
        timeout = self.runner.limits.timeout_s
        if timeout is not None and self._elapsed(s) > timeout:
            self.finish(s, "timeout")
        return s.finished

    def _elapsed(self, s: _Live) -> float:
        """The episode's wall time: its own environment calls and the batch's sampling, not the time
        spent stepping the other episodes' environments."""
        return time.perf_counter() - s.started - (self.env_s - s.others_env_s)

    def call(self, s: _Live | None, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``; for an episode, a raise or a hang past its time ends it (and returns None);
        for a group, the exception is returned for the caller to record."""
        timeout = self.runner.limits.timeout_s
        if s is not None and timeout is not None:
            if self._out_of_time(s):
                return None
            began = time.perf_counter()
            outcome = call_with_timeout(fn, args, timeout - self._elapsed(s))
            spent = time.perf_counter() - began
            self.env_s += spent
            s.others_env_s += spent  # its own time: not subtracted from its elapsed time
            if outcome.timed_out:
                self.finish(s, "timeout")
            elif outcome.error is not None:
                self.finish(s, "env_error", describe_error(outcome.error))
            return outcome.value
        try:
            return fn(*args)
        except Exception as e:  # an environment's bug is the episode's outcome, not the run's end
            if s is not None:
                self.finish(s, "env_error", describe_error(e))
                return None
            return e

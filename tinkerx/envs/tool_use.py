"""Arithmetic a small model cannot do in its head, with tools: the tool-use environment.

The system message lists the tools (their JSON schemas) and how to call them; each reply with
``<tool_call>`` blocks gets one ``tool`` message per call (the result, or an error the model can act
on); a reply with no call is the final answer, scored 1.0 when its last number is the right one.
Metrics per episode: ``tool_calls``, ``tool_errors`` (malformed, unknown tool, bad arguments, the
tool failed), ``success``.

Problems (``env.problems``): ``products`` ("What is 4817 * 3390?") or ``word`` (word problems over
the same numbers, some with a third number added or taken away, so the model must also write the
right expression). ``demonstration(task)`` is the episode a tool user plays -- one calculator call,
its result, the number -- for SFT data (``python -m tinkerx.envs.demonstrations``).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any, Sequence

from tinkerx.envs.one_turn import POLICY
from tinkerx.envs.protocol import Observation, StepResult
from tinkerx.envs.runner import EpisodeLimits
from tinkerx.envs.tools import Tool, build_tools, calculator, parse_calls, run_call
from tinkerx.errors import ConfigError

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
SYSTEM = ('Call a tool with <tool_call>{{"name": ..., "arguments": {{...}}}}</tool_call>; results come as tool messages. '
          "Answer with the number alone.\nTools:\n{tools}")


PROBLEMS = ("products", "word")
# (question, expression) patterns over a, b (``digits`` digits) and c (3 digits) for env.problems=word.
WORD_PROBLEMS = (
    ("A warehouse has {a} crates with {b} bottles in each. How many bottles are in the warehouse?", "{a} * {b}"),
    ("A printer prints {a} pages an hour. How many pages does it print in {b} hours?", "{a} * {b}"),
    ("A school buys {a} boxes of {b} pencils each and gives away {c} pencils. How many pencils does it have left?", "{a} * {b} - {c}"),
    ("A farmer plants {a} rows of {b} trees and another {c} trees along the fence. How many trees did the farmer plant?", "{a} * {b} + {c}"),
)


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str
    expression: str  # what a calculator call evaluates to reach the answer


class ToolUseEnv:
    def __init__(self, problem: Problem, tools: dict[str, Tool]) -> None:
        self.problem, self.tools = problem, tools

    def initial_observation(self) -> Observation:
        listing = "\n".join(json.dumps(t.schema()) for t in self.tools.values())
        return Observation(POLICY, [{"role": "system", "content": SYSTEM.format(tools=listing)}, {"role": "user", "content": self.problem.question}])

    def step(self, role: str, text: str) -> StepResult:
        calls, malformed = parse_calls(text)
        if not calls and not malformed:  # the final answer
            numbers = NUMBER.findall(text)
            won = bool(numbers) and numbers[-1] == self.problem.answer
            return StepResult(reward=float(won), done=True, metrics={"success": float(won)})
        results = [(m, True) for m in malformed] + [run_call(self.tools, c) for c in calls]
        messages = [{"role": "tool", "content": f"error: {r}" if error and not r.startswith("error") else r} for r, error in results]
        return StepResult(next=Observation(POLICY, messages), metrics={"tool_calls": float(len(results)), "tool_errors": float(sum(e for _, e in results))})


@dataclass
class ToolUseGroup:
    task: Problem
    tools: dict[str, Tool]
    roles: tuple[str, ...] = (POLICY,)

    def make_envs(self, n: int) -> list[ToolUseEnv]:
        return [ToolUseEnv(self.task, self.tools) for _ in range(n)]

    def group_rewards(self, episodes: Sequence[Any]) -> list[float]:
        return [0.0] * len(episodes)


class ToolUse:
    """``env=tool_use``: products of two ``digits``-digit numbers (or word problems over them), drawn with ``seed``."""

    def __init__(self, tools: Sequence[Any] = ("calculator", "python"), digits: int = 4, train_size: int = 200, test_size: int = 50,
                 seed: int = 0, max_turns: int = 5, max_tokens: int | None = None, timeout_s: float | None = None,
                 problems: str = "products") -> None:  # fmt: skip
        if digits < 1 or train_size < 1 or test_size < 0:
            raise ConfigError(f"env.digits and env.train_size must be >= 1 and env.test_size >= 0, got {digits}, {train_size}, {test_size}")
        if problems not in PROBLEMS:
            raise ConfigError(f"env.problems must be one of {', '.join(PROBLEMS)}, got {problems!r}")
        self.tools = build_tools(list(tools))
        self.limits = EpisodeLimits(max_turns, max_tokens, timeout_s)
        rng = random.Random(seed)
        low, high = 10 ** (digits - 1), 10**digits - 1

        def problem(i: str) -> Problem:
            a, b = rng.randint(low, high), rng.randint(low, high)
            if problems == "products":
                return Problem(i, f"What is {a} * {b}?", str(a * b), f"{a} * {b}")
            question, expression = rng.choice(WORD_PROBLEMS)
            numbers = {"a": a, "b": b, "c": rng.randint(100, 999)}
            expression = expression.format(**numbers)
            return Problem(i, question.format(**numbers), calculator(expression), expression)  # integers in, its integer out

        self.train = [problem(f"train-{i}") for i in range(train_size)]
        self.test = [problem(f"test-{i}") for i in range(test_size)]

    def group(self, task: Problem) -> ToolUseGroup:
        return ToolUseGroup(task, self.tools)

    def demonstration(self, task: Problem) -> list[dict[str, str]]:
        """The episode a tool user plays on ``task``, as chat messages: the opening the environment
        shows, one calculator call, its result as the tool message, the number alone."""
        if "calculator" not in self.tools:
            raise ConfigError(f"demonstrations call the calculator; env.tools has {', '.join(self.tools)}")
        env = ToolUseEnv(task, self.tools)
        call = f'<tool_call>{json.dumps({"name": "calculator", "arguments": {"expression": task.expression}})}</tool_call>'
        tool_messages = env.step(POLICY, call).next.messages  # a reply with a call always gets the tool's message
        return [*env.initial_observation().messages, {"role": "assistant", "content": call}, *tool_messages,
                {"role": "assistant", "content": task.answer}]  # fmt: skip

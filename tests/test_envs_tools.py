"""Tool use: calls parsed from the model's text, results as tool messages through the chat template,
the calculator and the sandboxed Python tool, tools from config, bad calls as observations."""

from __future__ import annotations

import json

import pytest

from tests.test_envs import ScriptedPolicy, params
from tinkerx.envs import EpisodeRunner
from tinkerx.envs.one_turn import POLICY
from tinkerx.envs.tool_use import ToolUse
from tinkerx.envs.tools import ToolCall, build_tools, calculator, parse_calls, run_call
from tinkerx.errors import ConfigError


@pytest.fixture(scope="module")
def tokenizer():
    from tinkerx.models.tiny import TinyModel

    return TinyModel(base_model="tinkerx/tiny").load_tokenizer()


def call(name: str, **arguments) -> str:
    return f'<tool_call>{json.dumps({"name": name, "arguments": arguments})}</tool_call>'


def word_count(text: str, minimum: int = 0) -> int:
    """Counts the words of a text.

    More detail that is not the description."""
    return max(len(text.split()), minimum)


def test_calls_are_parsed_and_bad_ones_become_messages():
    calls, errors = parse_calls(f"let me see {call('calculator', expression='2*3')} and <tool_call>{{oops</tool_call>")
    assert calls == [ToolCall("calculator", {"expression": "2*3"})]
    assert len(errors) == 1 and "malformed tool call" in errors[0]
    tools = build_tools(["calculator"])
    assert run_call(tools, ToolCall("search", {})) == ("error: unknown tool 'search'; tools: calculator", True)
    assert run_call(tools, ToolCall("calculator", {"expr": "1"}))[1] is True  # bad argument name
    assert run_call(tools, ToolCall("calculator", {"expression": "__import__('os')"}))[0].startswith("error: ValueError: not arithmetic")
    assert calculator("(12 + 3) * 4 / 2") == "30"


def test_tools_from_a_function_and_from_a_json_schema():
    tools = build_tools([{"function": "tests.test_envs_tools:word_count"},
                         {"function": "tests.test_envs_tools:word_count", "name": "words", "description": "How many words.",
                          "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}])  # fmt: skip
    derived = tools["word_count"].schema()["function"]
    assert derived["description"] == "Counts the words of a text."
    assert derived["parameters"] == {"type": "object", "properties": {"text": {"type": "string"}, "minimum": {"type": "integer"}}, "required": ["text"]}
    assert tools["words"].schema()["function"]["description"] == "How many words." and run_call(tools, ToolCall("words", {"text": "a b c"})) == ("3", False)
    for bad, message in [(["search"], "env.tools\\[0\\] is 'search'; valid: calculator, python"),
                         ([{"function": "tests.nope:fn"}], "cannot import 'tests.nope:fn'"), ([], "env.tools is empty")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            build_tools(bad)


def test_python_tool_runs_in_the_sandbox():
    tools = build_tools(["python"])
    assert run_call(tools, ToolCall("python", {"code": "print(sum(range(10)))"})) == ("45", False)
    result, _ = run_call(tools, ToolCall("python", {"code": "raise ValueError('no')"}))
    assert result.startswith("error (error): ValueError: no")


def test_a_tool_use_episode_calls_tools_reads_results_and_answers(tokenizer):
    spec = ToolUse(tools=["calculator", "python"], digits=3, train_size=1, test_size=0, max_turns=5)
    problem = spec.train[0]
    a, b = problem.question.removeprefix("What is ").removesuffix("?").split(" * ")
    script = iter(["<tool_call>{broken</tool_call>", call("search", q="x"), call("calculator", expression=f"{a} * {b}"),
                   call("python", code=f"print({a} * {b})"), problem.answer])  # fmt: skip
    policy = ScriptedPolicy(tokenizer, lambda prompt: next(script))
    [[episode]] = EpisodeRunner(tokenizer, params(256), spec.limits).launch([spec.group(problem)], 1, {POLICY: policy}).collect()
    assert episode.outcome == "done" and episode.reward == 1.0 and len(episode.turns) == 5
    observations = [t.observation for t in episode.turns[:-1]]
    assert all(m["role"] == "tool" for obs in observations for m in obs)
    assert "malformed tool call" in observations[0][0]["content"] and "unknown tool 'search'" in observations[1][0]["content"]
    assert observations[2][0]["content"] == problem.answer == observations[3][0]["content"]
    assert episode.metrics == {"tool_calls": 4.0, "tool_errors": 2.0, "success": 1.0}
    # The tool results reach the model as tool messages rendered by its chat template.
    last_prompt = tokenizer.decode(episode.turns[-1].prompt_T)
    assert f"<|im_start|>tool\n{problem.answer}<|im_end|>" in last_prompt and "<|im_start|>system\nCall a tool with <tool_call>" in last_prompt


@pytest.mark.slow
def test_a_tool_use_run_through_the_tinker_sdk_against_the_local_server(tinker_server, tmp_path):
    from tests.helpers.tinker_server import tinker_cli

    summary = tinker_cli(["method=grpo", "env=tool_use", "env.tools=[{function: 'tests.test_envs_tools:word_count'}]",
                          "env.max_turns=2", "env.max_tokens=500", "env.test_size=2", "env.train_size=4",
                          "training.max_steps=1", "training.batch_size=2", "method.group_size=2", "sampling.max_tokens=4",
                          "training.eval_every=0", "method.samples_per_step=2"], tmp_path / "run", tinker_server)  # fmt: skip
    assert summary["steps"] == 1 and summary["checkpoint"].startswith("tinker://") and summary["final"]["num_episodes"] == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["episodes/count"] == 4 and rows[1]["episodes/env_error"] == 0  # the tiny model's context is 512: env.max_tokens keeps under it
    episodes = [json.loads(line) for line in (tmp_path / "run" / "episodes" / "step_000001.jsonl").read_text().splitlines()]
    assert len(episodes) == 4 and all(e["turns"] and e["opening"][0]["role"] == "system" for e in episodes)


def test_word_problems_hold_their_numbers_and_the_value_of_their_expression():
    spec = ToolUse(tools=["calculator"], digits=4, train_size=40, test_size=10, problems="word")
    problems = spec.train + spec.test
    assert len({p.question.split(" ")[1] for p in problems}) > 1  # more than one pattern drawn
    for p in problems:
        numbers = [int(n) for n in p.expression.replace("*", " ").replace("+", " ").replace("-", " ").split()]
        assert all(str(n) in p.question for n in numbers), p
        assert int(p.answer) == eval(p.expression)  # the test's own check of the calculator's value
    # products stay what they were: "What is A * B?"
    assert ToolUse(tools=["calculator"], digits=4, train_size=3, test_size=0).train[0].question.startswith("What is ")
    with pytest.raises(ConfigError, match="env.problems must be one of products, word"):
        ToolUse(tools=["calculator"], problems="riddles")


def test_a_demonstration_is_an_episode_the_environment_scores_as_won(tokenizer):
    spec = ToolUse(tools=["calculator"], digits=4, train_size=4, test_size=0, problems="word", max_turns=3)
    problem = spec.train[0]
    messages = spec.demonstration(problem)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[:2] == spec.group(problem).make_envs(1)[0].initial_observation().messages
    assert messages[3]["content"] == messages[4]["content"] == problem.answer
    replies = iter([m["content"] for m in messages if m["role"] == "assistant"])
    policy = ScriptedPolicy(tokenizer, lambda prompt: next(replies))
    [[episode]] = EpisodeRunner(tokenizer, params(256), spec.limits).launch([spec.group(problem)], 1, {POLICY: policy}).collect()
    assert episode.reward == 1.0 and episode.metrics == {"tool_calls": 1.0, "tool_errors": 0.0, "success": 1.0}
    with pytest.raises(ConfigError, match="demonstrations call the calculator"):
        ToolUse(tools=["python"], train_size=1, test_size=0).demonstration(problem)


def test_demonstrations_cli_writes_the_training_split_as_chat_data(tmp_path):
    from tinkerx.data.chat import ChatDataset
    from tinkerx.envs.demonstrations import main

    out = tmp_path / "demos.jsonl"
    assert main(["env=tool_use", "env.problems=word", "env.train_size=12", "env.tools=[calculator]", "seed=3", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    spec = ToolUse(tools=["calculator"], train_size=12, test_size=50, seed=3, problems="word")
    assert [r["id"] for r in rows] == [p.id for p in spec.train] and rows[5]["messages"] == spec.demonstration(spec.train[5])
    data = ChatDataset(path=str(out), test_size=2, validation_size=2)
    assert len(data.train) == 8 and data.conversation(data.train[0])[-1]["role"] == "assistant"


def test_demonstrations_cli_refuses_what_it_cannot_write(tmp_path, capsys):
    from tinkerx.envs.demonstrations import main, write_demonstrations

    for argv, message in ((["env=tool_use", "env.tools=[python]"], "demonstrations call the calculator"), ([], "name an environment: env=tool_use")):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--out", str(tmp_path / "x.jsonl")])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()
    with pytest.raises(ConfigError, match="object has no demonstrations; environments with them: guess_number, tool_use"):
        write_demonstrations(object(), tmp_path / "x.jsonl")

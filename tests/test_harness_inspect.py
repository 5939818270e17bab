"""inspect-ai on tinkerx models: the ``tinkerx`` provider end to end on an offline task (tiny model),
tool calls written in the model's chat format turned into inspect ToolCalls and back, the generation
config reaching the sampler, the provider through ``backend=tinker``, and the bad inputs (a checkpoint
folder that holds nothing, an unknown model arg)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai", reason="inspect-ai is not installed: pip install 'tinkerx[inspect]'")

from inspect_ai import Task  # noqa: E402
from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.dataset import Sample  # noqa: E402
from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageTool, ChatMessageUser, GenerateConfig, get_model  # noqa: E402
from inspect_ai.scorer import includes  # noqa: E402
from inspect_ai.solver import generate, use_tools  # noqa: E402
from inspect_ai.tool import ToolCall, ToolCallError, ToolDef, ToolInfo, tool  # noqa: E402

from tests.helpers.checkpoints import tiny_checkpoint  # noqa: E402
from tests.helpers.paths import ROOT, SHARED_DATA  # noqa: E402
from tinkerx.chat import prompt_tokens  # noqa: E402
from tinkerx.errors import ConfigError  # noqa: E402
from tinkerx.harness.inspect_chat import prompt_for, split_tool_calls, to_messages  # noqa: E402
from tinkerx.harness.inspect_provider import TinkerxModelAPI  # noqa: E402
from tinkerx.harness.inspect_tasks import gsm8k  # noqa: E402

GSM8K = SHARED_DATA / "gsm8k" / "test.jsonl"


@tool
def add():
    async def execute(x: int, y: int) -> int:
        """Adds two integers.

        Args:
          x: The first.
          y: The second.
        """
        return x + y

    return execute


@pytest.fixture(scope="module")
def tiny():
    """The tiny model through the provider, as ``--model tinkerx/tiny`` opens it."""
    model = get_model("tinkerx/tiny", memoize=False)
    yield model
    model.api.close()


class ScriptedClient:
    """A sampling client that replies with the given texts in turn and records what it was sent."""

    def __init__(self, tokenizer, replies: list[str]) -> None:
        self.tokenizer, self.replies, self.prompts, self.params = tokenizer, list(replies), [], []

    def sample(self, prompt, num_samples, sampling_params, **_):
        from concurrent.futures import Future

        from tinker import types

        self.prompts.append(prompt.to_ints())
        self.params.append(sampling_params)
        tokens = self.tokenizer.encode(self.replies.pop(0), add_special_tokens=False) + [self.tokenizer.eos_token_id]
        future = Future()
        future.set_result(types.SampleResponse(sequences=[types.SampledSequence(stop_reason="stop", sequence_id="0", _tokens_list=tokens)] * num_samples))
        return future


@pytest.fixture
def scripted(tiny, monkeypatch):
    """The tiny model's provider with its sampling client replaced by a script: ``scripted(replies)``."""

    def install(replies: list[str]) -> ScriptedClient:
        client = ScriptedClient(tiny.api.opened.tokenizer, replies)
        monkeypatch.setattr(tiny.api.batcher, "client", client)
        # Room for a transcript with a tool listing: the tiny byte tokenizer spends one token per byte.
        monkeypatch.setattr(tiny.api.opened, "context_length", 4096)
        return client

    return install


def _generate(model, *args, **kwargs):
    return asyncio.run(model.generate(*args, **kwargs))


def _run(task: Task, model, tmp_path: Path, **kwargs):
    (log,) = inspect_eval(task, model=model, log_dir=str(tmp_path / "logs"), display="none", **kwargs)
    assert log.status == "success", log.error
    return log


# ---- end to end on the tiny model --------------------------------------------------------------
@pytest.mark.skipif(not GSM8K.is_file(), reason=f"no GSM8K test file at {GSM8K} (../shared is absent)")
def test_gsm8k_task_runs_on_the_tiny_model_and_writes_a_scored_log(tiny, tmp_path):
    log = _run(gsm8k(path=str(GSM8K), max_tokens=8), tiny, tmp_path, limit=3)
    assert Path(log.location).is_file()
    assert log.results.total_samples == 3 and log.results.scores[0].metrics["accuracy"].value in (0.0, 1 / 3, 2 / 3, 1.0)
    first = json.loads(GSM8K.read_text().splitlines()[0])
    assert log.samples[0].target == first["answer"].split("####")[-1].strip()
    usage = log.stats.model_usage["tinkerx/tiny"]
    tokenizer = tiny.api.opened.tokenizer
    prompts = [prompt_tokens(tokenizer, [{"role": "user", "content": s.input}]) for s in log.samples]
    assert usage.input_tokens == sum(len(p) for p in prompts)  # the prompt as tinkerx's chat rendering writes it
    assert 3 <= usage.output_tokens <= 3 * 8 and usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert all(s.scores and next(iter(s.scores.values())).value in ("C", "I") for s in log.samples)


def test_greedy_replies_equal_the_sampler_and_do_not_depend_on_batching(tiny, tmp_path):
    """Three samples in flight decode as one batch; each reply is what the sampler writes for it alone."""
    from tinker import types

    from tinkerx.chat import decode_completion

    questions = ["2+2=", "What is 7*6?", "Name a colour."]
    log = _run(Task(dataset=[Sample(input=q, target="x") for q in questions], solver=generate(), scorer=includes()), tiny, tmp_path, max_tokens=6)
    client, tokenizer = tiny.api.opened.client, tiny.api.opened.tokenizer
    for sample in log.samples:
        prompt = types.ModelInput.from_ints(prompt_tokens(tokenizer, [{"role": "user", "content": sample.input}]))
        alone = client.sample(prompt, 1, types.SamplingParams(max_tokens=6, temperature=0.0, seed=0)).result().sequences[0]
        assert sample.output.completion == decode_completion(tokenizer, alone.tokens)
        assert sample.output.stop_reason == ("max_tokens" if alone.stop_reason == "length" else "stop")


def test_a_checkpoint_is_evaluated_instead_of_the_base_model(tiny, tmp_path):
    tokenizer = tiny.api.opened.tokenizer
    prompt = prompt_tokens(tokenizer, [{"role": "user", "content": "hi"}])
    # Trained to write 7s (no end-of-turn in the target, so it keeps writing them for all 4 tokens).
    path = tiny_checkpoint(tmp_path / "ckpt", prompt, tokenizer.encode("7777", add_special_tokens=False), steps=20)
    trained = get_model("tinkerx/tiny", checkpoint=path, memoize=False)
    try:
        task = Task(dataset=[Sample(input="hi", target="7")], solver=generate(), scorer=includes())
        log = _run(task, trained, tmp_path, max_tokens=4)
        assert log.samples[0].output.completion == "7777" and log.results.scores[0].metrics["accuracy"].value == 1.0
        base = _run(task, tiny, tmp_path, max_tokens=4)
        assert "7" not in base.samples[0].output.completion  # the base model's random weights do not write it
    finally:
        trained.api.close()


# ---- tool calls ----------------------------------------------------------------------------------
def test_a_tool_call_in_the_models_format_becomes_an_inspect_tool_call_and_its_result_goes_back(tiny, scripted, tmp_path):
    client = scripted(['Let me add.\n<tool_call>{"name": "add", "arguments": {"x": 19, "y": 23}}</tool_call>', "The sum is 42."])
    task = Task(dataset=[Sample(input="What is 19 + 23?", target="42")], solver=[use_tools(add()), generate()], scorer=includes())
    log = _run(task, tiny, tmp_path)
    messages = log.samples[0].messages
    call_message = next(m for m in messages if isinstance(m, ChatMessageAssistant) and m.tool_calls)
    (call,) = call_message.tool_calls
    assert (call.function, call.arguments) == ("add", {"x": 19, "y": 23})
    assert call_message.text == "Let me add."  # the call left the text
    (result,) = [m for m in messages if isinstance(m, ChatMessageTool)]
    assert result.text == "42" and result.tool_call_id == call.id  # inspect ran the tool on the parsed arguments
    assert log.samples[0].output.completion == "The sum is 42." and log.results.scores[0].metrics["accuracy"].value == 1.0
    # What the model read: the tool's schema and the call syntax (ChatML's template reads no tools), then
    # its own call written back as it wrote it and the result as a tool message.
    first, second = (client.tokenizer.decode(p) for p in client.prompts)
    assert '"name": "add"' in first and '"x": {"type": "integer"' in first and "<tool_call>{" in first
    assert '<|im_start|>assistant\nLet me add.\n<tool_call>{"name": "add", "arguments": {"x": 19, "y": 23}}</tool_call><|im_end|>' in second
    assert second.endswith("<|im_start|>tool\n42<|im_end|>\n<|im_start|>assistant\n")


def test_a_malformed_call_is_returned_as_text_with_no_call(tiny, scripted):
    text = '<tool_call>{"name": "add", "arguments": {"x": 1,</tool_call>'
    scripted([text])
    output = _generate(tiny, [ChatMessageUser(content="1+2?")], tools=[add()])
    assert output.message.tool_calls is None and output.completion == text and output.stop_reason == "stop"


def test_well_formed_calls_leave_the_text_and_malformed_ones_stay():
    good = '<tool_call>{"name": "add", "arguments": {"x": 1, "y": 2}}</tool_call>'
    bad = "<tool_call>not json</tool_call>"
    content, calls = split_tool_calls(f"First {good} then {bad} end")
    assert [(c.function, c.arguments) for c in calls] == [("add", {"x": 1, "y": 2})]
    assert content == f"First  then {bad} end"
    assert split_tool_calls("no call here") == ("no call here", [])
    assert split_tool_calls(bad) == (bad, [])


def test_transcript_messages_are_written_as_the_model_wrote_and_read_them(tiny):
    messages = [
        ChatMessageSystem(content="Be brief."),
        ChatMessageUser(content="1+2?"),
        ChatMessageAssistant(content="", tool_calls=[ToolCall(id="a", function="add", arguments={"x": 1, "y": 2})]),
        ChatMessageTool(content="", tool_call_id="a", function="add", error=ToolCallError("parsing", "bad x")),
    ]
    assert to_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "1+2?"},
        {"role": "assistant", "content": '<tool_call>{"name": "add", "arguments": {"x": 1, "y": 2}}</tool_call>'},
        {"role": "tool", "content": "error: bad x"},
    ]
    tokenizer = tiny.api.opened.tokenizer
    info = ToolDef(add())
    with_tools = tokenizer.decode(prompt_for(tokenizer, messages, [ToolInfo(name=info.name, description=info.description, parameters=info.parameters)]))
    assert with_tools.startswith("<|im_start|>system\nBe brief.\n\nCall a tool with <tool_call>")  # the listing joins the system message
    assert prompt_for(tokenizer, messages, []) == prompt_tokens(tokenizer, to_messages(messages))


def test_tool_choice_none_sends_no_tools_and_parses_no_call(tiny, scripted):
    text = '<tool_call>{"name": "add", "arguments": {"x": 1, "y": 2}}</tool_call>'
    client = scripted([text])
    output = _generate(tiny, [ChatMessageUser(content="1+2?")], tools=[add()], tool_choice="none")
    assert output.message.tool_calls is None and output.completion == text
    assert "add" not in client.tokenizer.decode(client.prompts[0])


# ---- generation config, usage, limits ------------------------------------------------------------
def test_generation_config_reaches_the_sampler_and_stop_sequences_cut_the_text(tiny, scripted):
    client = scripted(["12 apples. DONE and more"])
    config = GenerateConfig(max_tokens=9, temperature=0.7, top_p=0.9, top_k=5, stop_seqs=["DONE"], seed=11, num_choices=2)
    output = _generate(tiny, [ChatMessageUser(content="How many?")], config=config)
    (params,) = client.params
    assert (params.max_tokens, params.temperature, params.top_p, params.top_k, params.stop, params.seed) == (9, 0.7, 0.9, 5, ["DONE"], 11)
    assert [c.message.text for c in output.choices] == ["12 apples. ", "12 apples. "]
    reply = len(client.tokenizer.encode("12 apples. DONE and more", add_special_tokens=False)) + 1
    assert (output.usage.input_tokens, output.usage.output_tokens) == (len(client.prompts[0]), 2 * reply)


def test_unset_temperature_is_greedy_and_max_tokens_fits_the_context(tiny, scripted, monkeypatch):
    client = scripted(["a"])
    monkeypatch.setattr(tiny.api.opened, "context_length", 40)
    output = _generate(tiny, [ChatMessageUser(content="hi")], config=GenerateConfig(max_tokens=500))
    prompt = len(client.prompts[0])
    assert client.params[0].temperature == 0.0 and client.params[0].max_tokens == 40 - prompt
    assert output.completion == "a"


def test_a_prompt_that_fills_the_context_ends_with_model_length(tiny, scripted, monkeypatch):
    client = scripted([])
    monkeypatch.setattr(tiny.api.opened, "context_length", 10)
    output = _generate(tiny, [ChatMessageUser(content="a prompt longer than ten tokens")])
    assert output.stop_reason == "model_length" and output.completion == "" and client.prompts == []


# ---- backends ------------------------------------------------------------------------------------
def test_backend_tinker_replies_like_the_local_backend(tiny, tinker_server, monkeypatch):
    from tests.helpers.tinker_server import KEY

    monkeypatch.setenv("TINKER_API_KEY", KEY)
    remote = get_model("tinkerx/tiny", base_url=tinker_server, backend="tinker", overrides="backend.record=false", memoize=False)
    try:
        messages, config = [ChatMessageUser(content="What is 3+4?")], GenerateConfig(max_tokens=6, seed=3)
        got, expected = _generate(remote, messages, config=config), _generate(tiny, messages, config=config)
        assert got.completion == expected.completion and got.usage.output_tokens == expected.usage.output_tokens
    finally:
        remote.api.close()


# ---- bad input -----------------------------------------------------------------------------------
def test_a_checkpoint_folder_that_holds_nothing_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        get_model("tinkerx/tiny", checkpoint=str(tmp_path), memoize=False)
    assert "holds no tinkerx checkpoint" in str(e.value) and "\n" not in str(e.value)
    assert e.value.message == str(e.value)  # what inspect's CLI prints for it, without a traceback


def test_an_unknown_model_arg_is_one_line():
    with pytest.raises(ConfigError, match=r"unknown chekpoint; valid: checkpoint, backend, seed, overrides"):
        TinkerxModelAPI("tiny", chekpoint="x")


def test_an_unknown_model_is_one_line():
    with pytest.raises(ConfigError) as e:
        get_model("tinkerx/no-such-model", memoize=False)
    assert "no-such-model" in str(e.value) and "\n" not in str(e.value)


# ---- the installed entry point ------------------------------------------------------------------
REGISTERED = any(ep.value == "tinkerx.harness.inspect_registry" for ep in entry_points(group="inspect_ai"))


@pytest.mark.slow
@pytest.mark.skipif(not REGISTERED, reason="the installed tinkerx predates the inspect_ai entry point: reinstall it (pip install -e '.[inspect]')")
@pytest.mark.skipif(not GSM8K.is_file(), reason=f"no GSM8K test file at {GSM8K} (../shared is absent)")
def test_plain_inspect_eval_finds_the_provider_and_the_task(tmp_path):
    command = [sys.executable, "-m", "inspect_ai", "eval", "tinkerx/gsm8k", "--model", "tinkerx/tiny", "--limit", "2",
               "-T", f"path={GSM8K}", "-T", "max_tokens=4", "--log-dir", str(tmp_path), "--display", "plain"]  # fmt: skip
    # Run from elsewhere with the installed package, as a user does: in a checkout's root, or with a
    # checkout on PYTHONPATH, inspect reads tinkerx/gsm8k as a path under its tinkerx/ folder and
    # finds no task there (README, inspect-ai).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(command, cwd=elsewhere, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (log,) = tmp_path.glob("*.eval")  # --log-dir, not the working folder
    assert "gsm8k" in log.name and "accuracy" in done.stdout

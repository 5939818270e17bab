"""inspect-ai model provider ``tinkerx``: a tinkerx model or checkpoint, sampled in process.

    inspect eval task.py --model tinkerx/smollm2-135m
    inspect eval task.py --model tinkerx/smollm2-135m -M checkpoint=RUN_DIR
    inspect eval task.py --model tinkerx/qwen3-8b -M backend=tinker -M checkpoint=tinker://... --model-base-url URL
    inspect_ai.eval(task, model=get_model("tinkerx/tiny", checkpoint=RUN_DIR))

The name after ``tinkerx/`` is a ``conf/model`` option. Model args (``-M``): ``checkpoint`` (a
checkpoint folder, a run folder or a ``tinker://`` path; none = the base model), ``backend``
(local | tinker), ``seed`` (for requests that give none), ``overrides`` (further tinkerx config
overrides, ';'-separated). ``--model-base-url`` is ``backend.base_url``: a Tinker-compatible
server. Installed with ``pip install 'tinkerx[inspect]'``, which registers the provider through the
``inspect_ai`` entry point. Concurrent samples decode together (``inspect_batching``).

- Messages are rendered with the model's chat template (``tinkerx.chat``); tools and tool calls in
  the model's chat format as ``inspect_chat`` describes (a malformed call stays in the text, no call).
- Generation config: ``max_tokens`` (default 2048, cut to what the context leaves; a prompt that
  fills the context ends with stop reason ``model_length``), ``temperature`` (unset: greedy, as
  tinkerx's evaluator), ``top_p``, ``top_k``, ``stop_seqs`` (the text is cut before the first one),
  ``seed``, ``num_choices``. Usage counts the prompt's tokens and every choice's sampled tokens.
- ``tool_choice="none"`` sends no tools and parses no calls; ``"any"`` and a named function cannot
  be forced on a sampler and act as ``"auto"``.
- A mistake in the model args (an unknown model, a checkpoint path that holds nothing) is one line:
  a ``ConfigError`` that inspect's CLI prints without a traceback.
"""

from __future__ import annotations

from typing import Any

from inspect_ai._util.error import PrerequisiteError  # not exported; the error inspect's CLI prints as one line
from inspect_ai.model import ChatCompletionChoice, ChatMessage, ChatMessageAssistant, GenerateConfig, ModelAPI, ModelOutput, ModelUsage, modelapi
from inspect_ai.tool import ToolChoice, ToolInfo

from tinkerx.chat import decode_completion
from tinkerx.errors import ConfigError, UserError
from tinkerx.harness.inspect_batching import SampleBatcher
from tinkerx.harness.inspect_chat import prompt_for, split_tool_calls
from tinkerx.harness.model_access import OpenedModel, open_model

DEFAULT_MAX_TOKENS = 2048  # inspect's own default for local models
STOP_REASONS = {"stop": "stop", "length": "max_tokens"}  # the sampler's -> inspect's


class TinkerxModelError(ConfigError, PrerequisiteError):
    """A ConfigError that inspect's CLI shows as one line (it prints a PrerequisiteError's message, no traceback)."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.message = message


@modelapi(name="tinkerx")
class TinkerxModelAPI(ModelAPI):
    def __init__(self, model_name: str, base_url: str | None = None, api_key: str | None = None, config: GenerateConfig = GenerateConfig(),
                 checkpoint: str | None = None, backend: str = "local", seed: int = 0, overrides: str | None = None, **model_args: Any) -> None:  # fmt: skip
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key, config=config)
        if model_args:
            raise TinkerxModelError(f"tinkerx model args: unknown {', '.join(sorted(model_args))}; valid: checkpoint, backend, seed, overrides (and --model-base-url)")
        extra = [f"backend.base_url={base_url}"] if base_url else []
        extra += [o for o in (overrides or "").split(";") if o]
        self.seed = int(seed)
        try:
            self.opened: OpenedModel = open_model(model_name, checkpoint or None, backend, extra, seed=self.seed)
        except UserError as e:
            raise TinkerxModelError(str(e)) from None
        self.batcher = SampleBatcher(self.opened.client)

    async def generate(self, input: list[ChatMessage], tools: list[ToolInfo], tool_choice: ToolChoice, config: GenerateConfig) -> ModelOutput:
        from tinker import types

        tools = [] if tool_choice == "none" else tools
        tokenizer = self.opened.tokenizer
        prompt = prompt_for(tokenizer, input, tools)
        room = (self.opened.context_length or 10**9) - len(prompt)
        if room < 1:  # inspect ends the sample on model_length instead of failing the eval
            return ModelOutput.from_content(self.model_name, "", stop_reason="model_length")
        params = types.SamplingParams(
            max_tokens=min(config.max_tokens or DEFAULT_MAX_TOKENS, room),
            temperature=config.temperature if config.temperature is not None else 0.0,
            top_p=config.top_p if config.top_p is not None else 1.0,
            top_k=config.top_k if config.top_k is not None else -1,
            stop=list(config.stop_seqs) if config.stop_seqs else None,
            seed=config.seed if config.seed is not None else self.seed,
        )
        response = await self.batcher.sample(prompt, config.num_choices or 1, params)
        choices = [self._choice(s, tools, config.stop_seqs or []) for s in response.sequences]
        output_tokens = sum(len(s.tokens) for s in response.sequences)
        usage = ModelUsage(input_tokens=len(prompt), output_tokens=output_tokens, total_tokens=len(prompt) + output_tokens)
        return ModelOutput(model=self.model_name, choices=choices, usage=usage)

    def _choice(self, sequence: Any, tools: list[ToolInfo], stop_seqs: list[str]) -> ChatCompletionChoice:
        text = decode_completion(self.opened.tokenizer, sequence.tokens)
        cut = min((text.find(s) for s in stop_seqs if s and s in text), default=-1)
        text = text[:cut] if cut >= 0 else text
        content, calls = split_tool_calls(text) if tools else (text, [])
        message = ChatMessageAssistant(content=content, tool_calls=calls or None, model=self.model_name, source="generate")
        stop_reason = "tool_calls" if calls else STOP_REASONS.get(sequence.stop_reason, "unknown")
        return ChatCompletionChoice(message=message, stop_reason=stop_reason)

    def max_tokens(self) -> int | None:
        return DEFAULT_MAX_TOKENS

    def max_connections(self) -> int:
        """Samples in flight at once: also the largest batch ``SampleBatcher`` decodes together."""
        return 32

    def close(self) -> None:
        self.opened.close()

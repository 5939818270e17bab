"""inspect-ai's chat messages and tools in a tinkerx model's chat format, and tool calls read back.

A tool call is written in tinkerx's format (tinkerx/envs/tools.py, as Qwen / Hermes templates write it)::

    <tool_call>{"name": "add", "arguments": {"x": 1, "y": 2}}</tool_call>

- Tools reach the model through its chat template when the template reads ``tools`` (Qwen's does);
  a template that does not (ChatML: tiny, SmolLM2) gets them in the system message instead, listed
  as JSON schemas with the call syntax -- the prompt tinkerx's ``env=tool_use`` trains with.
- An earlier assistant turn's calls are written back into its text in the same format, and a tool
  result is a ``tool`` message (a failed call's text starts with ``error:``), so a multi-turn
  transcript reads as the model wrote and saw it.
- A reply's ``<tool_call>`` blocks are parsed by ``tinkerx.envs.tools.parse_calls``; each well-formed
  one becomes an inspect ``ToolCall`` and leaves the text. A malformed block (not JSON, no name) is
  not a call: it stays in the reply's text, so the scorer and the transcript show what the model wrote.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Sequence

from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageTool
from inspect_ai.tool import ToolCall, ToolInfo

from tinkerx.chat import prompt_tokens
from tinkerx.envs.tools import CALL, parse_calls

TOOLS_SYSTEM = ('Call a tool with <tool_call>{{"name": ..., "arguments": {{...}}}}</tool_call>; '
                "results come as tool messages.\nTools:\n{tools}")  # fmt: skip


def tool_schemas(tools: Sequence[ToolInfo]) -> list[dict[str, Any]]:
    """OpenAI-style function schemas, what chat templates and tinkerx's tool listing take."""
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters.model_dump(exclude_none=True)}} for t in tools]  # fmt: skip


def template_reads_tools(tokenizer: Any) -> bool:
    return "tools" in (getattr(tokenizer, "chat_template", None) or "")


def write_call(name: str, arguments: dict[str, Any]) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def to_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """inspect messages as tinkerx's ``{"role", "content"}`` dicts (text only)."""
    out = []
    for m in messages:
        text = m.text
        if isinstance(m, ChatMessageAssistant) and m.tool_calls:
            text = "\n".join([text, *(write_call(c.function, c.arguments) for c in m.tool_calls)]).strip()
        elif isinstance(m, ChatMessageTool) and m.error is not None:
            text = f"error: {m.error.message}"
        out.append({"role": m.role, "content": text})
    return out


def with_tool_listing(messages: list[dict[str, str]], schemas: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The tools and the call syntax appended to the system message (one is added when there is none)."""
    listing = TOOLS_SYSTEM.format(tools="\n".join(json.dumps(s) for s in schemas))
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{listing}"}, *messages[1:]]
    return [{"role": "system", "content": listing}, *messages]


def prompt_for(tokenizer: Any, messages: Sequence[ChatMessage], tools: Sequence[ToolInfo]) -> list[int]:
    """The tokens of the conversation and the assistant header, through the model's chat template."""
    chat = to_messages(messages)
    if not tools:
        return prompt_tokens(tokenizer, chat)
    schemas = tool_schemas(tools)
    if not template_reads_tools(tokenizer):
        return prompt_tokens(tokenizer, with_tool_listing(chat, schemas))
    # tinkerx.chat.prompt_tokens, with the template's own tool rendering.
    text = tokenizer.apply_chat_template(chat, tools=schemas, add_generation_prompt=True, tokenize=False)
    return tokenizer.encode(text, add_special_tokens=False)


def split_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """(the reply's text without its well-formed calls, those calls as inspect ToolCalls)."""
    calls: list[ToolCall] = []
    kept, last = [], 0
    for match in CALL.finditer(text):
        parsed, _malformed = parse_calls(match.group(0))
        if not parsed:  # malformed: left in the text, not a call
            continue
        kept.append(text[last : match.start()])
        last = match.end()
        # ids unique across the transcript: inspect matches each tool result to its call by id
        calls += [ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", function=c.name, arguments=c.arguments) for c in parsed]
    kept.append(text[last:])
    return "".join(kept).strip() if calls else text, calls

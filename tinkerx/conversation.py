"""Multi-turn conversations to tokens and exact loss masks, through the model's own chat template.

How the assistant replies are found: for each assistant turn ``i`` the template renders the
conversation before it with the generation prompt (``messages[:i]`` + the assistant header) and the
conversation up to and including it. Both renderings must be text prefixes of the whole
conversation's rendering (a template that rewrites earlier turns, such as one that strips
reasoning from past replies, is refused with a one-line error). Those two lengths cut the rendered
text into segments; each segment is tokenized on its own and the tokens concatenated, so every
token belongs to exactly one segment and the mask can never straddle a role header. For the
templates tinkerx was tested with (ChatML: tiny, SmolLM2; Llama-3 and Mistral-style on the tiny
tokenizer) this is token for token the tokenization of the whole text (tests/test_conversation.py).
Where it is not (a header ending in whitespace that a tokenizer would merge with the reply's first
word, e.g. a Llama-3 template on a GPT-2-style tokenizer), the turn-by-turn tokens are kept on
purpose: each reply then follows its header's tokens exactly as a sampled reply follows
``tinkerx.chat.prompt_tokens``, so the mask stays exact and training matches sampling at the boundary.

The tokens of an assistant segment carry loss up to and including its first special token, the
template's end-of-turn token (``<|im_end|>``, ``<|eot_id|>``, ``</s>``), so the model learns to stop;
what a template writes after it (ChatML's newline) carries none. ``train_on=all_assistant`` trains every
assistant reply, ``last_assistant`` only the last one (earlier replies are context).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from tinkerx.errors import ConfigError

Messages = Sequence[dict[str, str]]
TRAIN_ON = ("all_assistant", "last_assistant")


@dataclass
class RenderedConversation:
    tokens: list[int]
    weights: list[float]  # one per token: 1.0 on the trained assistant contents and their end-of-turn token
    replies: list[tuple[int, int]] = field(default_factory=list)  # token span [start, end) of every assistant reply, end-of-turn included


def check_template(tokenizer: Any, model: str = "") -> None:
    """ConfigError unless the tokenizer has a chat template to render conversations with."""
    if not getattr(tokenizer, "chat_template", None):
        name = model or getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ConfigError(f"the tokenizer of {name} has no chat template, and conversations are rendered with it: "
                          "choose a chat (instruct) model, or set tokenizer.chat_template")  # fmt: skip


def _render(tokenizer: Any, messages: Messages, generation_prompt: bool) -> str:
    if not messages:
        return ""
    return tokenizer.apply_chat_template(list(messages), add_generation_prompt=generation_prompt, tokenize=False)


def _special_ids(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id, added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def render_conversation(tokenizer: Any, messages: Messages, train_on: str = "all_assistant") -> RenderedConversation:
    """Tokens of the whole conversation and the weight of each; see the module's docstring."""
    if train_on not in TRAIN_ON:
        raise ConfigError(f"dataset.train_on must be one of {', '.join(TRAIN_ON)}, got {train_on!r}")
    check_template(tokenizer)
    messages = list(messages)
    whole = _render(tokenizer, messages, False)
    cuts: list[tuple[int, int]] = []  # character span of each assistant segment
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before, through = _render(tokenizer, messages[:i], True), _render(tokenizer, messages[: i + 1], False)
        if not (whole.startswith(before) and whole.startswith(through) and len(before) <= len(through)):
            raise ConfigError("the model's chat template renders earlier turns differently once later turns follow "
                              "(e.g. it strips past reasoning), so assistant replies cannot be masked exactly; use another model or template")  # fmt: skip
        cuts.append((len(before), len(through)))
    special = _special_ids(tokenizer)
    last = len(cuts) - 1
    tokens: list[int] = []
    weights: list[float] = []
    replies: list[tuple[int, int]] = []
    position = 0
    for index, (start, end) in enumerate(cuts):
        context = _encode(tokenizer, whole[position:start])
        tokens += context
        weights += [0.0] * len(context)
        reply = _encode(tokenizer, whole[start:end])
        stop = next((k + 1 for k, t in enumerate(reply) if t in special), len(reply))  # through the end-of-turn token
        trained = 1.0 if train_on == "all_assistant" or index == last else 0.0
        replies.append((len(tokens), len(tokens) + stop))
        tokens += reply
        weights += [trained] * stop + [0.0] * (len(reply) - stop)
        position = end
    tail = _encode(tokenizer, whole[position:])
    return RenderedConversation(tokens + tail, weights + [0.0] * len(tail), replies)


def _encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False, verbose=False) if text else []  # lengths are checked by tinkerx.data.lengths


def conversation_datum(rendered: RenderedConversation):
    """A Tinker ``Datum``: position i of the input predicts token i + 1, weighted by that token's weight."""
    from tinker import types

    return types.Datum(
        model_input=types.ModelInput.from_ints(rendered.tokens[:-1]),
        loss_fn_inputs={"target_tokens": rendered.tokens[1:], "weights": rendered.weights[1:]},
    )


def fit_conversation(tokenizer: Any, messages: Messages, limit: int, train_on: str) -> tuple[list[dict[str, str]] | None, int]:
    """``(messages cut to fit limit tokens, full length)`` for ``dataset.overlong=truncate``.

    Whole turns are removed from the end until the conversation, ending on an assistant reply, fits:
    a reply is never cut inside, so no loss mask is ever silently truncated (with
    ``last_assistant`` the last kept reply is the one trained). None when even the first reply
    does not fit.
    """
    messages = list(messages)
    full = len(render_conversation(tokenizer, messages, train_on).tokens)
    ends = [i + 1 for i, m in enumerate(messages) if m["role"] == "assistant"]
    for end in reversed(ends):
        if len(render_conversation(tokenizer, messages[:end], train_on).tokens) <= limit:
            return messages[:end], full
    return None, full


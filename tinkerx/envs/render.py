"""The next turn's prompt without re-tokenizing the transcript.

A role's next prompt is its previous prompt + the tokens it sampled + the tokens of only what is new:
the end of its reply's turn as the chat template writes it, the new messages, and the assistant header.
That new text is cut out of the template's own renderings (as tinkerx/conversation.py cuts turns):
``through`` (the conversation up to and including the reply) must be a prefix of ``whole`` (with the new
messages and the generation prompt). The reply's sampled tokens are kept as sampled -- never
re-encoded -- so what the policy is trained on is exactly what it saw and wrote.
"""

from __future__ import annotations

from typing import Any, Sequence

from tinkerx.chat import prompt_tokens
from tinkerx.conversation import _encode, _render, _special_ids, check_template
from tinkerx.errors import ConfigError

Messages = Sequence[dict[str, str]]


def first_prompt(tokenizer: Any, messages: Messages) -> list[int]:
    check_template(tokenizer)
    return prompt_tokens(tokenizer, messages)


def continuation(tokenizer: Any, conversation: Messages, reply_T: Sequence[int], new_messages: Messages) -> list[int]:
    """Tokens to append after a reply's sampled tokens ``reply_T`` so that the prompt ends like the
    template's rendering of ``conversation`` (ending with that reply as an assistant message) +
    ``new_messages`` + the assistant header."""
    conversation = list(conversation)
    before = _render(tokenizer, conversation[:-1], True)
    through = _render(tokenizer, conversation, False)
    whole = _render(tokenizer, conversation + list(new_messages), True)
    if not (whole.startswith(through) and through.startswith(before)):
        raise ConfigError("the model's chat template renders earlier turns differently once later turns follow "
                          "(e.g. it strips past reasoning), so a multi-turn episode cannot extend its prompt; use another model or template")  # fmt: skip
    start, end = _end_of_turn(tokenizer, through, len(before))
    # A reply that stopped on the end-of-turn token carries it already; a cut one (max_tokens, a stop
    # string) does not, and gets the template's end-of-turn here so the next turn reads as the template's.
    stopped = bool(reply_T) and reply_T[-1] in _special_ids(tokenizer)
    return _encode(tokenizer, through[end if stopped else start :] + whole[len(through) :])


def _end_of_turn(tokenizer: Any, through: str, reply_start: int) -> tuple[int, int]:
    """Character span of the first special token the template wrote after the reply's start."""
    names = [tokenizer.convert_ids_to_tokens(i) for i in _special_ids(tokenizer)]
    found = [(through.find(n, reply_start), n) for n in names if n and through.find(n, reply_start) >= 0]
    if not found:  # a template with no end-of-turn token: the reply ends where the rendering does
        return len(through), len(through)
    position, name = min(found)
    return position, position + len(name)

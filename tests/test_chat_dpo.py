"""DPO on conversation pairs: message lists, implicit prompts, HH-RLHF text; one shared prompt per pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.runs import run_in_process
from tinkerx.chat import prompt_tokens
from tinkerx.data.conversation_pairs import hh_messages, pair_turns
from tinkerx.data.preference import PreferenceJsonl
from tinkerx.errors import DataError
from tinkerx.methods.dpo.pairs import tokenize_pairs
from tinkerx.models.tiny import TinyModel

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HH = SHARED / "hh_rlhf" / "harmless-base-test.prompt_chosen_rejected.jsonl"

SYSTEM = {"role": "system", "content": "Be brief."}


def _user(text):
    return {"role": "user", "content": text}


def _assistant(text):
    return {"role": "assistant", "content": text}


def test_message_list_prompt_with_text_or_message_replies():
    prompt = [SYSTEM, _user("hi"), _assistant("hello"), _user("2+2?")]
    for chosen, rejected in (("4", "5"), ([_assistant("4")], [_assistant("5")])):
        record = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        assert pair_turns(record, "prompt", "chosen", "rejected", "f:1") == (prompt, "4", "5")


def test_implicit_prompt_is_the_shared_beginning_of_both_conversations():
    before = [SYSTEM, _user("2+2?")]
    record = {"chosen": before + [_assistant("4")], "rejected": before + [_assistant("5")]}
    assert pair_turns(record, "prompt", "chosen", "rejected", "f:3") == (before, "4", "5")
    record["rejected"] = [_user("3+3?"), _assistant("5")]
    with pytest.raises(DataError, match=r"f:3: fields 'chosen' and 'rejected' have different prompts \(from turn 0\)") as e:
        pair_turns(record, "prompt", "chosen", "rejected", "f:3")
    assert "\n" not in str(e.value)


def test_hh_text_becomes_messages_and_replies_lose_the_format_space():
    record = {"prompt": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: 2+2?\n\nAssistant:", "chosen": " 4", "rejected": " 5"}
    prompt, chosen, rejected = pair_turns(record, "prompt", "chosen", "rejected", "f:1")
    assert prompt == [_user("hi"), _assistant("hello"), _user("2+2?")] and (chosen, rejected) == ("4", "5")
    # Whole HH transcripts with no prompt field: split at their last Assistant turn.
    record = {"chosen": "\n\nHuman: 2+2?\n\nAssistant: 4", "rejected": "\n\nHuman: 2+2?\n\nAssistant: 5"}
    assert pair_turns(record, "prompt", "chosen", "rejected", "f:1") == ([_user("2+2?")], "4", "5")
    assert hh_messages("Human: a\n\nAssistant: b") == [_user("a"), _assistant("b")]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"prompt": [_user("q")], "chosen": [_assistant("a"), _user("more?")], "rejected": "b"}, "field 'chosen' must end with an assistant turn"),
        ({"prompt": [{"role": "wizard", "content": "q"}], "chosen": "a", "rejected": "b"}, r"prompt\[0\].role is 'wizard', an unknown role"),
        ({"prompt": [_user("q")], "chosen": [{"role": "assistant", "content": 4}], "rejected": "b"}, r"chosen\[0\].content must be a string"),
        ({"prompt": [SYSTEM], "chosen": "a", "rejected": "b"}, "field 'prompt' has no user turn"),
        ({"prompt": "q", "chosen": "a"}, r"missing field\(s\) rejected"),
    ],
)  # fmt: skip
def test_bad_pairs_are_one_line_errors_naming_the_record_and_field(tmp_path, record, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError, match=f"p.jsonl:2: .*{message}"):
        PreferenceJsonl(str(path), test_size=0)


def _conversation_pairs(path: Path, n: int) -> Path:
    rows = [{"prompt": [SYSTEM, _user(f"{i}+1?")], "chosen": [_assistant(str(i + 1))], "rejected": [_assistant("no idea")]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_both_replies_share_one_rendered_prompt(tmp_path):
    tok = TinyModel().load_tokenizer()
    ds = PreferenceJsonl(str(_conversation_pairs(tmp_path / "p.jsonl", 8)), test_size=2)
    (tp,) = tokenize_pairs(tok, ds, ds.pairs["train"][:1])
    assert tp.prompt_T == prompt_tokens(tok, [SYSTEM, _user(tp.pair.example.question)])
    assert tok.decode(tp.prompt_T).startswith("<|im_start|>system\nBe brief.<|im_end|>")
    chosen, rejected = tp.datums()
    assert chosen.model_input.to_ints()[: len(tp.prompt_T)] == rejected.model_input.to_ints()[: len(tp.prompt_T)] == tp.prompt_T


def test_dpo_on_conversation_pairs_trains_and_raises_held_out_preference(tmp_path):
    pairs = _conversation_pairs(tmp_path / "pairs.jsonl", 24)
    summary = run_in_process(["method=dpo", "dataset=preference_jsonl", f"dataset.path={pairs}", "dataset.test_size=6", "~reward", "~evaluator",
                              "training.max_steps=4", "training.batch_size=6", "training.eval_every=0", "optim.lr=1e-3"], tmp_path / "run")  # fmt: skip
    assert summary["pairs"] == {"train": 18, "test": 6}
    assert summary["baseline"]["pref_accuracy"] == 0.5 and summary["final"]["pref_margin"] > 0


@pytest.mark.skipif(not HH.is_file(), reason=f"needs ../shared/data ({HH} absent)")
def test_the_hh_rlhf_file_reads_as_multi_turn_prompts():
    ds = PreferenceJsonl(str(HH), test_size=20)
    prompts = [ds.messages(ex) for ex in ds.train[:200]]
    assert all(p[0]["role"] == "user" and p[-1]["role"] == "user" for p in prompts)
    assert any(len(p) > 1 for p in prompts)
    # A few HH transcripts join turns without the blank line ("...rap Human: ..."): kept as written, rare.
    leftovers = sum(any("Human:" in m["content"] or "Assistant:" in m["content"] for m in p) for p in prompts)
    assert leftovers <= 4, leftovers

"""dataset=chat: formats, the documented turn rules, one-line errors, and SFT / eval runs on conversations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.helpers.runs import metrics_rows, run_in_process
from tinkerx.data.chat import ChatDataset, ConversationReader, normalize
from tinkerx.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OASST = SHARED / "oasst1_en100" / "oasst_en100_messages.jsonl"


def _write(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _conversation(i: int) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"{i}+1?"}, {"role": "assistant", "content": str(i + 1)},
            {"role": "user", "content": "and +2?"}, {"role": "assistant", "content": str(i + 2)}]  # fmt: skip


EXPECTED = _conversation(3)


@pytest.mark.parametrize(
    "record, format",
    [
        ({"messages": EXPECTED}, "messages"),
        ({"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "3+1?"}, {"from": "gpt", "value": "4"},
                            {"from": "human", "value": "and +2?"}, {"from": "gpt", "value": "5"}]}, "sharegpt"),
        ({"prompt": EXPECTED[:4], "completion": EXPECTED[4:]}, "prompt_completion"),
    ],
)  # fmt: skip
def test_every_format_reads_to_the_same_messages_auto_detected_or_named(record, format):
    assert ConversationReader().messages(record, "f:1") == EXPECTED
    assert ConversationReader(format=format).messages(record, "f:1") == EXPECTED


def test_plain_text_prompt_completion_is_one_user_and_one_assistant_turn():
    assert ConversationReader().messages({"prompt": "hi", "completion": "yo"}, "f:1") == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]  # fmt: skip


def test_empty_turns_dropped_same_role_turns_merged_trailing_turns_left_out():
    turns = [{"role": "user", "content": "a"}, {"role": "user", "content": "  "}, {"role": "user", "content": "b"},
             {"role": "assistant", "content": "c"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "unanswered"}]  # fmt: skip
    assert normalize(turns) == [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c"}]


@pytest.mark.parametrize(
    "line, message",
    [
        ({"text": "hello"}, r"c.jsonl:2: no conversation: expected field 'messages'"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, r"c.jsonl:2: messages\[0\].role is 'wizard', an unknown role; valid: system, user, assistant, tool"),
        ({"messages": [{"role": "user", "content": "x"}]}, r"c.jsonl:2: the conversation has no assistant turn"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ["x"]}]}, r"c.jsonl:2: messages\[1\].content must be a string, got a JSON list"),
        ({"messages": "hello"}, r"c.jsonl:2: field 'messages' must be a list of turns"),
    ],
)  # fmt: skip
def test_bad_records_are_one_line_errors_naming_file_line_and_field(tmp_path, line, message):
    path = _write(tmp_path / "c.jsonl", [{"messages": EXPECTED}, line])
    with pytest.raises(DataError, match=message) as e:
        ChatDataset(str(path))
    assert "\n" not in str(e.value)


def test_format_named_but_absent_and_bad_options(tmp_path):
    path = _write(tmp_path / "c.jsonl", [{"messages": EXPECTED}])
    with pytest.raises(DataError, match=r"c.jsonl:1: missing field 'conversations'"):
        ChatDataset(str(path), format="sharegpt")
    with pytest.raises(ConfigError, match="dataset.format must be one of auto, messages, sharegpt, prompt_completion"):
        ChatDataset(str(path), format="alpaca")
    with pytest.raises(ConfigError, match="dataset.train_on must be one of all_assistant, last_assistant"):
        ChatDataset(str(path), train_on="everything")
    with pytest.raises(DataError, match="data file not found"):
        ChatDataset(str(tmp_path / "absent.jsonl"))


def test_splits_prompt_and_reply_of_each_conversation(tmp_path):
    ds = ChatDataset(str(_write(tmp_path / "c.jsonl", [{"messages": _conversation(i)} for i in range(40)])), validation_size=4, test_size=8)
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (28, 4, 8)
    ex = ds.test[0]
    assert ds.messages(ex) == ds.conversation(ex)[:-1] and ds.conversation(ex)[0]["role"] == "system"  # system prompt kept
    assert ds.completion(ex) == ex.answer == ds.conversation(ex)[-1]["content"]


def test_a_tokenizer_without_a_chat_template_is_refused_before_step_1(tmp_path):
    from tinkerx.data.lengths import Need, apply_length_rule
    from tinkerx.models.tiny import TinyModel

    ds = ChatDataset(str(_write(tmp_path / "c.jsonl", [{"messages": _conversation(i)} for i in range(8)])))
    tok = TinyModel().load_tokenizer()
    tok.chat_template = None
    with pytest.raises(ConfigError, match="has no chat template") as e:
        apply_length_rule(ds, tok, {"test": Need("generate", 8, "evaluator.max_tokens", evaluation=True)}, 512, "model.context_length")
    assert "\n" not in str(e.value)


# --- runs ---------------------------------------------------------------------------------------

FAST = ["training.batch_size=4", "training.eval_every=0", "evaluator.max_examples=4", "sampling.max_tokens=8", "method.validation_every=2"]


def test_sft_on_conversations_trains_every_reply_and_lowers_the_loss(tmp_path):
    path = _write(tmp_path / "c.jsonl", [{"messages": _conversation(i)} for i in range(40)])
    args = ["method=sft", "dataset=chat", f"dataset.path={path}", "dataset.test_size=8", "dataset.validation_size=4",
            "training.max_steps=6", "~reward", *FAST]  # fmt: skip
    summary = run_in_process(args, tmp_path / "run")
    rows = metrics_rows(tmp_path / "run")
    train = [r for r in rows if "train/loss" in r]
    assert summary["steps"] == 6 and train[-1]["train/loss"] < train[0]["train/loss"]
    # Two replies of 1-2 digits plus <|im_end|> each: 4-6 weighted tokens per conversation, 4 per batch.
    assert all(16 <= r["train/tokens"] <= 24 for r in train), [r["train/tokens"] for r in train]
    # Held-out NLL before and after, and the sampled replies beside the reference in the run folder.
    base, final = summary["baseline"], summary["final"]
    assert final["nll"] < base["nll"] and final["perplexity"] == pytest.approx(math.exp(final["nll"]))
    assert base["nll_tokens"] == final["nll_tokens"] > 0 and "accuracy" not in final  # nothing to grade
    replies = [json.loads(line) for line in (tmp_path / "run" / "eval" / "final.jsonl").read_text().splitlines()]
    assert len(replies) == 4 and all(r["reference"] and "completion" in r and r["prompt"][-1]["role"] == "user" for r in replies)
    assert (tmp_path / "run" / "eval" / "baseline.jsonl").is_file()


@pytest.mark.skipif(not OASST.is_file(), reason=f"needs ../shared/data ({OASST} absent)")
def test_overlong_conversations_are_dropped_or_cut_at_whole_turns(tmp_path):
    common = ["method=sft", "dataset=chat", f"dataset.path={OASST}", "dataset.max_length=400", "training.max_steps=1", "~reward", "~evaluator", *FAST[:1]]
    run_in_process([*common, "dataset.overlong=drop"], tmp_path / "drop")
    run_in_process([*common, "dataset.overlong=truncate"], tmp_path / "cut")
    dropped, cut = metrics_rows(tmp_path / "drop")[0], metrics_rows(tmp_path / "cut")[0]
    assert dropped["data/train_overlong"] == cut["data/train_overlong"] > 0
    assert dropped["data/train_dropped"] == dropped["data/train_overlong"] and dropped["data/train_truncated"] == 0
    assert cut["data/train_truncated"] > 0 and cut["data/train_dropped"] < dropped["data/train_dropped"]
    with pytest.raises(DataError, match="longer than dataset.max_length=400"):
        run_in_process([*common, "dataset.overlong=error"], tmp_path / "error")


def test_mcp_init_sft_given_a_conversations_file_trains_on_the_chat_data_set(tmp_path):
    from tinkerx.mcp.session import TrainingSession

    path = _write(tmp_path / "c.jsonl", [{"conversations": [{"from": "human", "value": f"{i}+1?"}, {"from": "gpt", "value": str(i + 1)}]} for i in range(24)])
    session = TrainingSession(tmp_path / "session", ["model=tiny", "backend=local"])
    started = session.init_sft(examples_path=str(path), batch_size=4, max_steps=2, max_tokens=4, validation_every=0)
    assert started["method"] == "sft"
    session.train_sft_step(steps=2)
    assert session.evaluate()["metrics"]["nll"] > 0  # held-out NLL of the conversations: they were read as chat
    session.finish()

"""The issue's bad chat input through the real CLI: exit 2, one stderr line naming the file, the
record (its line) and the field, and nothing in the run folder that looks like a run.

(A tokenizer without a chat template has no CLI route with the offline models, whose tokenizers all
carry one: tests/test_chat_data.py and tests/test_conversation.py refuse it in-process, before step 1.)
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli

pytestmark = pytest.mark.slow

GOOD = {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]}
SFT = ["model=tiny", "method=sft", "dataset=chat", "~reward", "training.max_steps=1"]
DPO = ["model=tiny", "method=dpo", "dataset=preference_jsonl", "~reward", "~evaluator", "training.max_steps=1", "dataset.test_size=0"]

CASES = {
    "no messages": (SFT, {"text": "hello"}, ["c.jsonl:2:", "'messages'"]),
    "unknown role": (SFT, {"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]},
                     ["c.jsonl:2:", "messages[0].role", "'wizard'", "valid: system, user, assistant, tool"]),
    "no assistant turn": (SFT, {"messages": [{"role": "user", "content": "x"}]}, ["c.jsonl:2:", "no assistant turn"]),
    "content not a string": (SFT, {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ["y"]}]},
                             ["c.jsonl:2:", "messages[1].content", "must be a string"]),
    "pair prompts differ": (DPO, {"chosen": [{"role": "user", "content": "a?"}, {"role": "assistant", "content": "yes"}],
                                  "rejected": [{"role": "user", "content": "b?"}, {"role": "assistant", "content": "no"}]},
                            ["c.jsonl:2:", "'chosen' and 'rejected' have different prompts"]),
}  # fmt: skip

GOOD_PAIR = {"prompt": "q", "chosen": "a", "rejected": "b"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chat_bad_input")

    def run(name: str):
        base, bad, _ = CASES[name]
        folder = tmp / name.replace(" ", "_")
        folder.mkdir()
        path = folder / "c.jsonl"
        path.write_text(json.dumps(GOOD_PAIR if base is DPO else GOOD) + "\n" + json.dumps(bad) + "\n")
        return run_cli([*base, f"dataset.path={path}", f"hydra.run.dir={folder / 'run'}"], timeout=300, cwd=folder), folder / "run"

    with ThreadPoolExecutor(max_workers=3) as pool:  # each fails before any model work: seconds apiece
        return dict(zip(CASES, pool.map(run, CASES)))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_chat_input_is_one_line_naming_file_record_and_field(results, case):
    result, run_dir = results[case]
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinkerx: error: "), result.stderr[-3000:]
    for fragment in CASES[case][2]:
        assert fragment in lines[0], (fragment, lines[0])
    left = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    assert not left & {"metrics.jsonl", "summary.json", "checkpoints", "eval", "samples.jsonl"}, left

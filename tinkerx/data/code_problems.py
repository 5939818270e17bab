"""Code problems graded by running tests: MBPP (``dataset=mbpp``) and HumanEval (``dataset=humaneval``).

Each example's ``answer`` is the problem's tests as JSON (``rewards.code_tests.problem_json``), its
``solution`` the reference program, so ``reward=code_tests`` grades any completion and the run's
start-up check grades the reference solutions. Prompt templates may name ``question`` (the
description, or HumanEval's prompt), ``first_test``, ``tests`` (all asserts, one a line),
``entry_point`` and ``task_id``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinkerx.data.base import Dataset, PromptFormat
from tinkerx.example import Example
from tinkerx.data.hub import load_hub_rows
from tinkerx.data.jsonl import check_jsonl
from tinkerx.data.splits import take
from tinkerx.errors import ConfigError, DataError
from tinkerx.rewards.code_tests import defined_names, problem_json

# The official MBPP split by task id (Austin et al. 2021): few-shot prompts, test, validation, train.
MBPP_SPLITS = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}
MBPP_VARIANTS = {"full": ("text", "test_setup_code"), "sanitized": ("prompt", "test_imports")}
MBPP_HUB = "google-research-datasets/mbpp"
HUMANEVAL_HUB = "openai/openai_humaneval"


def read_records(path: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """JSON lines checked (one-line DataError naming the line), read as they are: lists stay lists."""
    checked = check_jsonl(path, required)
    with Path(checked).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class MBPP(Dataset):
    """Mostly Basic Python Problems: ``variant`` full (974) or sanitized (427), split by task id.

    From ``path`` (a local ``mbpp.jsonl`` / ``sanitized-mbpp.jsonl``) or, with none, the hub.
    The ``prompt`` split (task ids 1-10) is kept as ``few_shot`` for templates that want examples.
    """

    name = "mbpp"

    def __init__(
        self,
        path: str | None = None,
        variant: str = "full",
        max_train: int | None = None,
        max_test: int | None = None,
        seed: int = 0,
        prompt: PromptFormat | None = None,
        max_tokens: int = 512,
        overlong: str = "drop",
        max_length: int | None = None,
    ) -> None:
        super().__init__(prompt, max_tokens, overlong, max_length)
        if variant not in MBPP_VARIANTS:
            raise ConfigError(f"dataset.variant must be one of {', '.join(MBPP_VARIANTS)}, got {variant!r}")
        text_field, setup_field = MBPP_VARIANTS[variant]
        if path is None:
            hint = f"mbpp: the Hugging Face hub is unreachable; point at a local file with dataset.path=mbpp.jsonl (variant {variant})"
            rows = [row for split in MBPP_SPLITS for row in load_hub_rows(MBPP_HUB, variant, split, hint)]
            source = f"{MBPP_HUB}:{variant}"
        else:
            rows = read_records(path, ("task_id", text_field, "code", "test_list"))
            source = str(path)
        examples = {split: [] for split in MBPP_SPLITS}
        for i, row in enumerate(rows):
            split = next((s for s, ids in MBPP_SPLITS.items() if int(row["task_id"]) in ids), None)
            if split is None:
                raise DataError(f"{source}: record {i + 1}: task_id {row['task_id']} is outside MBPP's 1-974")
            examples[split].append(_mbpp_example(row, text_field, setup_field, source, i))
        self.few_shot = examples["prompt"]
        self.train, self.validation = take(examples["train"], max_train, seed), examples["validation"]
        self.test = take(examples["test"], max_test, seed)
        self.check_prompt(source)


def _mbpp_example(row: dict[str, Any], text_field: str, setup_field: str, source: str, index: int) -> Example:
    tests = row["test_list"]
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise DataError(f"{source}: record {index + 1}: test_list must be a non-empty list of assert lines")
    setup = row.get(setup_field) or ""
    if isinstance(setup, list):  # sanitized: test_imports is a list of import lines
        setup = "\n".join(setup)
    task_id = str(row["task_id"])
    code = str(row["code"]).replace("\r\n", "\n")
    called = [name for name in defined_names(code) if any(f"{name}(" in t for t in tests)]
    return Example(
        question=str(row[text_field]),
        answer=problem_json(tests, setup=setup, keep_names=called),
        id=f"mbpp-{task_id}",
        solution=code,
        fields={"task_id": task_id, "first_test": tests[0], "tests": "\n".join(tests), "entry_point": ""},
    )


class HumanEval(Dataset):
    """OpenAI's 164 HumanEval problems: complete the prompt's function; ``check(candidate)`` grades it.

    A test set only (no training split). From ``path`` (``HumanEval.jsonl``) or, with none, the hub.
    """

    name = "humaneval"

    def __init__(
        self,
        path: str | None = None,
        max_test: int | None = None,
        seed: int = 0,
        prompt: PromptFormat | None = None,
        max_tokens: int = 512,
        overlong: str = "drop",
        max_length: int | None = None,
    ) -> None:
        super().__init__(prompt, max_tokens, overlong, max_length)
        required = ("task_id", "prompt", "entry_point", "canonical_solution", "test")
        if path is None:
            hint = "humaneval: the Hugging Face hub is unreachable; point at a local file with dataset.path=HumanEval.jsonl"
            rows, source = load_hub_rows(HUMANEVAL_HUB, None, "test", hint), HUMANEVAL_HUB
        else:
            rows, source = read_records(path, required), str(path)
        self.test = take([_humaneval_example(row) for row in rows], max_test, seed)
        self.check_prompt(source)


def _humaneval_example(row: dict[str, Any]) -> Example:
    entry = str(row["entry_point"])
    return Example(
        question=str(row["prompt"]),
        answer=problem_json([f"{row['test']}\n\ncheck({entry})\n"], prefix=str(row["prompt"]), entry_point=entry),
        id=str(row["task_id"]),
        solution=str(row["canonical_solution"]),
        fields={"task_id": str(row["task_id"]), "entry_point": entry, "first_test": "", "tests": str(row["test"])},
    )

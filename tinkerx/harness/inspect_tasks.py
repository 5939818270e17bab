"""inspect-ai tasks over local data files (no hub): ``tinkerx/gsm8k``.

    inspect eval tinkerx/gsm8k --model tinkerx/smollm2-135m --limit 20
    inspect eval tinkerx/gsm8k -T path=../shared/data/gsm8k/test.jsonl --model tinkerx/tiny

The data is read from ``path``, default ``$TINKERX_DATA/gsm8k/test.jsonl`` (or ../shared/data), and
the prompt is tinkerx's own GSM8K prompt (conf/dataset/gsm8k.yaml), so a score here is comparable
with tinkerx's evaluator; a reply is right when its last number equals the reference answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import Sample, json_dataset
from inspect_ai.scorer import match
from inspect_ai.solver import generate

from tinkerx.errors import DataError
from tinkerx.harness.lm_eval_tasks import data_root

GSM8K_PROMPT = "{question}\n\nSolve the problem step by step, then give the final answer as a number on the last line in the form: #### <number>"


def gsm8k_sample(record: dict[str, Any]) -> Sample:
    return Sample(input=GSM8K_PROMPT.format(question=record["question"]), target=record["answer"].split("####")[-1].strip().replace(",", ""))


@task
def gsm8k(path: str | None = None, max_tokens: int = 512) -> Task:
    """GSM8K test problems, one generation each, scored by the final number."""
    file = Path(path).expanduser() if path else data_root() / "gsm8k" / "test.jsonl"
    if not file.is_file():
        raise DataError(f"gsm8k: no data file at {file}; give -T path=FILE.jsonl or set TINKERX_DATA")
    return Task(dataset=json_dataset(str(file), gsm8k_sample), solver=generate(max_tokens=max_tokens), scorer=match(numeric=True))

"""lm-eval task definitions over local data files (no hub): MMLU-STEM multiple choice, GSM8K generative.

The files are written with the data folder's absolute path filled in (lm-eval's YAML has no variables)
and passed to lm-eval as ``--include_path``; the prompts are lm-eval's own ``mmlu`` (zero-shot) and
``gsm8k`` formats, so the numbers are comparable with the harness's usual tasks.
"""

from __future__ import annotations

import os
from pathlib import Path

from tinkerx.errors import DataError

TASKS = {
    "tinkerx_mmlu_stem": ("mmlu_stem/test.jsonl", """task: tinkerx_mmlu_stem
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{choices[0]}}}}\\nB. {{{{choices[1]}}}}\\nC. {{{{choices[2]}}}}\\nD. {{{{choices[3]}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""),
    "tinkerx_gsm8k": ("gsm8k/test.jsonl", """task: tinkerx_gsm8k
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer.split('####')[-1].strip()}}}}"
generation_kwargs:
  until: ["Question:", "</s>", "<|im_end|>", "\\n\\n"]
  do_sample: false
  temperature: 0.0
  max_gen_toks: 256
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]
metadata:
  version: 1.0
"""),
}


def data_root() -> Path:
    """Where the data sets live: $TINKERX_DATA, else ../shared/data (as conf/dataset resolves it)."""
    return Path(os.environ.get("TINKERX_DATA", "../shared/data")).expanduser().resolve()


def write_tasks(out_dir: str | Path, root: str | Path | None = None) -> Path:
    """Writes every task whose data file exists into ``out_dir``; refuses (one line) when none does."""
    out, root = Path(out_dir), Path(root).resolve() if root else data_root()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (relative, template) in TASKS.items():
        path = root / relative
        if path.is_file():
            (out / f"{name}.yaml").write_text(template.format(path=path))
            written.append(name)
    if not written:
        raise DataError(f"no data for the tinkerx lm-eval tasks under {root} (expected {', '.join(r for r, _ in TASKS.values())}); set TINKERX_DATA")
    return out

"""``python -m tinkerx.grade``: a file of completions graded black-box, as a user would run it."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.conftest import ROOT, run_cli
from tinkerx.sandbox import namespaces_available


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _grade(tmp_path, rows, *overrides, name="completions"):
    file = _write(tmp_path / f"{name}.jsonl", rows)
    out = tmp_path / f"{name}_out"
    done = run_cli([str(file), *overrides, "--out", str(out)], module="tinkerx.grade", timeout=900)
    return done, out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_all_500_mbpp_test_references_pass_and_a_wrong_one_fails(tmp_path, shared_data):
    rows = [json.loads(line) for line in (shared_data / "mbpp" / "mbpp.jsonl").read_text().splitlines()]
    completions = [{"task_id": r["task_id"], "completion": r["code"]} for r in rows if 11 <= r["task_id"] <= 510]
    assert len(completions) == 500
    # A wrong solution: task 11's function, returning its input unchanged.
    completions.append({"task_id": 11, "completion": "def remove_Occ(s, ch):\n    return s\n"})
    done, out = _grade(tmp_path, completions, "dataset=mbpp", "reward=code_tests", f"dataset.path={shared_data / 'mbpp' / 'mbpp.jsonl'}")
    assert done.returncode == 0, done.stderr[-2000:]
    records = _read(out / "eval" / "mbpp.jsonl")
    assert [r["reward"] for r in records[:500]] == [1.0] * 500, [(r["id"], r["outcome"], r["reason"]) for r in records[:500] if r["reward"] != 1.0]
    assert records[500]["reward"] == 0.0 and records[500]["outcome"] == "failed"
    results = json.loads((out / "results.json").read_text())["benchmarks"]["mbpp"]
    assert results["metrics"]["code/passed"] == 500 and results["metrics"]["code/failed"] == 1
    problems = {p["id"]: p for p in _read(out / "problems.jsonl")}
    assert len(problems) == 500 and problems["mbpp-11"]["samples"] == 2 and problems["mbpp-11"]["pass@1"] == 0.5


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_all_164_humaneval_references_pass_and_a_wrong_one_fails(tmp_path, shared_data):
    rows = [json.loads(line) for line in (shared_data / "humaneval" / "HumanEval.jsonl").read_text().splitlines()]
    completions = [{"task_id": r["task_id"], "completion": r["canonical_solution"]} for r in rows]
    # A wrong solution, written as a chat model would: the whole function in a fenced block.
    completions.append({"task_id": "HumanEval/0", "completion": "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"})
    done, out = _grade(tmp_path, completions, "dataset=humaneval", "reward=code_tests", f"dataset.path={shared_data / 'humaneval' / 'HumanEval.jsonl'}")
    assert done.returncode == 0, done.stderr[-2000:]
    records = _read(out / "eval" / "humaneval.jsonl")
    assert sum(r["reward"] for r in records[:164]) == 164.0, [(r["id"], r["outcome"], r["reason"]) for r in records[:164] if r["reward"] != 1.0]
    assert records[164]["reward"] == 0.0 and records[164]["outcome"] == "failed"
    assert "pass@1=" in done.stdout and "graded 165 completions" in done.stdout


@pytest.mark.timeout(300)
def test_hostile_completions_grade_zero_and_leave_the_machine_untouched(tmp_path, shared_data):
    if not namespaces_available():
        pytest.skip("no Linux namespaces here: hostile programs are only run inside the full sandbox")
    marker = f"{time.time() % 1000 + 4000:.6f}"
    escape = tmp_path / "escaped.txt"
    hostile = {
        "loop": "while True:\n    pass\n",
        "fork": f"import os\nfor _ in range(2000):\n    if os.fork() == 0:\n        os.execv('/bin/sleep', ['sleep', '{marker}'])\n",
        "memory": "x = bytearray(8 * 1024 ** 3)\n",
        "disk": "with open('big', 'wb') as f:\n    for _ in range(5 * 1024):\n        f.write(b'0' * 2 ** 20)\n",
        "escape": f"open({str(escape)!r}, 'w').write('x')\n",
        "leftover": f"import os\nos.system('sleep {marker} &')\n",
        "output": "import sys\nfor _ in range(16384):\n    sys.stdout.write('x' * 65536)\n",
        "exit": "import sys\nsys.exit(0)\n",
        "patch": "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\ndef remove_Occ(s, ch):\n    return None\n",
    }
    rows = [{"task_id": 11, "completion": f"```python\n{code}```", "kind": kind} for kind, code in hostile.items()]
    done, out = _grade(tmp_path, rows, "dataset=mbpp", "reward=code_tests", f"dataset.path={shared_data / 'mbpp' / 'mbpp.jsonl'}",
                       "reward.executor.limits.timeout_s=5", "reward.executor.limits.memory_mb=256", "reward.executor.limits.cpu_s=3")
    assert done.returncode == 0, done.stderr[-2000:]
    records = _read(out / "eval" / "mbpp.jsonl")
    assert [r["reward"] for r in records] == [0.0] * len(hostile), [(r["outcome"], r["reason"]) for r in records]
    outcomes = dict(zip(hostile, (r["outcome"] for r in records)))
    assert outcomes["loop"] == "timeout" and outcomes["output"] == "killed" and outcomes["exit"] == "error"
    time.sleep(0.5)
    assert marker not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert not escape.exists() and not (ROOT / "big").exists()


def test_mistakes_are_one_line(tmp_path, shared_data):
    path = f"dataset.path={shared_data / 'mbpp' / 'mbpp.jsonl'}"
    done, _ = _grade(tmp_path, [{"task_id": 99999, "completion": "x"}], "dataset=mbpp", "reward=code_tests", path, name="unknown")
    assert done.returncode == 2 and "task_id 99999 is not in the data set" in done.stderr and "Traceback" not in done.stderr
    done, _ = _grade(tmp_path, [{"completion": "x"}], "dataset=mbpp", "reward=code_tests", path, name="noid")
    assert done.returncode == 2 and "needs one of task_id, id, index" in done.stderr
    done, _ = _grade(tmp_path, [{"index": 0, "completion": "x"}], "dataset=mbpp", "reward=code_test", path, name="typo")
    assert done.returncode == 2 and "code_tests" in done.stderr and "Traceback" not in done.stderr


def test_other_rewards_grade_too(tmp_path, shared_data):
    rows = [{"index": 0, "completion": "#### 18"}, {"index": 1, "completion": "#### 5"}]
    done, out = _grade(tmp_path, rows, "dataset=gsm8k", "reward=numeric", f"dataset.test_path={shared_data / 'gsm8k' / 'test.jsonl'}")
    assert done.returncode == 0, done.stderr[-2000:]
    records = _read(out / "eval" / "gsm8k.jsonl")
    assert [r["reward"] for r in records] == [1.0, 0.0]  # GSM8K test 0's answer is 18, test 1's is 3

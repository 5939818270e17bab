"""Every user mistake through the real CLI: exit != 0, one stderr line ``tinkerx: error: ...``, no traceback.

All cases start at once from a temporary working directory and fail before any model work, so
the whole matrix costs about as long as its slowest case.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks.bad_input_cases import cases as bad_input_cases

ROOT = Path(__file__).resolve().parents[1]
@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_input")
    env = {**os.environ, "TINKER_API_KEY": "tml-test", "TINKER_TELEMETRY": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cases = bad_input_cases(tmp)

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=120, cwd=tmp, env=env)

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        done = dict(zip(cases, pool.map(run, [args for args, _ in cases.values()])))
    return {name: (done[name], fragments) for name, (_, fragments) in cases.items()}


CASES = ["unwritable output folder", "max_steps not an integer", "seed not an integer", "typo in a key", "config group set to null", "misspelt experiment",
         "config no longer composes", "unreachable tinker server", "reward hangs at import", "reward hangs per call",
         "cuda on a CPU-only torch"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line(results, case):
    if case not in results:
        pytest.skip("this machine has CUDA: the CPU-only case cannot happen here")
    result, fragments = results[case]
    assert result.returncode != 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinkerx: error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])

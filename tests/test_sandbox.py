"""The code sandbox against honest and hostile programs.

Every hostile program runs only inside the sandbox, with small limits (256 MB, 32 processes,
a few seconds), and each test has its own timeout, so a sandbox that failed could not take the
machine down. The hostile tests need the Linux namespaces (they skip, saying so, without them):
without isolation a program killing every process it may signal would be a danger to the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tinkerx.sandbox import Job, Limits, LocalProcessExecutor, namespaces_available

ROOT = Path(__file__).resolve().parents[1]
SMALL = Limits(timeout_s=6, cpu_s=3, memory_mb=256, file_mb=16, tmp_mb=32, processes=32, output_mb=1)
ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = ("assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4")


@pytest.fixture(scope="module")
def sandbox() -> LocalProcessExecutor:
    if not namespaces_available():
        pytest.skip("no Linux user/mount/network/PID namespaces here: the hostile-program tests need them")
    return LocalProcessExecutor(SMALL, workers=2, namespaces=True)


def _ps_args() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout


def _run(sandbox: LocalProcessExecutor, program: str, tests=ADD_TESTS):
    started = time.perf_counter()
    outcome = sandbox.run(Job(program, tuple(tests)))
    assert time.perf_counter() - started < SMALL.timeout_s + 5, "the sandbox overran its own wall-clock limit"
    return outcome


# ---- honest programs ---------------------------------------------------------------------------
def test_correct_program_passes_every_test(sandbox):
    outcome = _run(sandbox, ADD)
    assert (outcome.status, outcome.tests_passed, outcome.tests_total) == ("passed", 3, 3)
    assert outcome.fraction == 1.0


def test_wrong_program_fails_with_the_count_of_tests_passed(sandbox):
    outcome = _run(sandbox, "def add(a, b):\n    return 3\n")
    assert (outcome.status, outcome.tests_passed) == ("failed", 1)
    assert outcome.test_results == (True, False, False)
    assert outcome.reason.startswith("test 1: AssertionError")


def test_compile_error_and_load_error_are_told_apart(sandbox):
    assert _run(sandbox, "def add(a, b)\n    return a + b").status == "compile_error"
    crashed = _run(sandbox, "raise RuntimeError('boom')")
    assert crashed.status == "error" and "RuntimeError: boom" in crashed.reason


def test_stdout_and_stderr_tails_are_kept(sandbox):
    outcome = _run(sandbox, ADD + "import sys\nprint('hello out')\nprint('hello err', file=sys.stderr)\n")
    assert outcome.passed
    assert "hello out" in outcome.stdout_tail and "hello err" in outcome.stderr_tail


def test_setup_code_runs_before_the_program(sandbox):
    outcome = sandbox.run(Job("def f():\n    return CONSTANT\n", ("assert f() == 7",), setup="CONSTANT = 7"))
    assert outcome.passed


def test_a_main_block_does_not_run(sandbox):
    outcome = _run(sandbox, ADD + "if __name__ == '__main__':\n    raise SystemExit(3)\n")
    assert outcome.passed


def test_jobs_run_in_parallel_and_keep_their_order(sandbox):
    jobs = [Job(f"def f():\n    return {i}\n", (f"assert f() == {i}",)) for i in range(6)]
    jobs[3] = Job("def f():\n    return -1\n", ("assert f() == 3",))
    outcomes = sandbox.run_many(jobs)
    assert [o.status for o in outcomes] == ["passed", "passed", "passed", "failed", "passed", "passed"]


def test_workers_are_bounded_by_the_machine():
    executor = LocalProcessExecutor(SMALL, workers=10_000, namespaces=False)
    assert 1 <= executor.workers <= (os.cpu_count() or 1)


# ---- hostile programs --------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_infinite_loop_times_out(sandbox):
    outcome = _run(sandbox, "while True:\n    pass\n")
    assert outcome.status == "timeout" and outcome.tests_passed == 0


@pytest.mark.timeout(60)
def test_fork_loop_of_sleeping_children_is_contained_and_leaves_nothing(sandbox):
    marker = f"{time.time() % 1000 + 2000:.6f}"  # a sleep length nothing else on the machine uses
    program = (
        "import os\n"
        "for i in range(2000):\n"
        "    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
        + ADD
    )
    outcome = _run(sandbox, program)
    assert outcome.status == "error" and "Resource temporarily unavailable" in outcome.reason  # the process limit held
    time.sleep(0.5)
    assert marker not in _ps_args(), "children of the fork loop survived the execution"


@pytest.mark.timeout(60)
def test_allocating_8_gb_fails_inside_the_sandbox(sandbox):
    outcome = _run(sandbox, "x = bytearray(8 * 1024 ** 3)\n" + ADD)
    assert outcome.status == "error" and "MemoryError" in outcome.reason


@pytest.mark.timeout(60)
def test_writing_a_5_gb_file_stops_at_the_file_size_limit(sandbox):
    program = "with open('big', 'wb') as f:\n    for _ in range(5 * 1024):\n        f.write(b'0' * 1024 * 1024)\n" + ADD
    outcome = _run(sandbox, program)
    assert outcome.status == "error" and "File too large" in outcome.reason


@pytest.mark.timeout(60)
def test_writing_outside_its_folder_fails_everywhere(sandbox, tmp_path):
    name = f"tinkerx-escape-{uuid.uuid4().hex}"
    home = os.path.expanduser("~")
    targets = [tmp_path / name, ROOT / name, Path("/tmp") / name, Path(home) / name, Path("/var/tmp") / name]
    lines = "".join(
        f"try:\n    open({str(t)!r}, 'w').write('x')\n    wrote.append({str(t)!r})\nexcept OSError:\n    pass\n" for t in targets
    )
    program = "wrote = []\n" + lines + ADD
    private = [f"/tmp/{name}", f"/var/tmp/{name}"]
    outcome = _run(sandbox, program, (f"assert set(wrote) <= set({private!r}), wrote",))
    # /tmp and /var/tmp are the sandbox's own private tmpfs: a write there is allowed and vanishes with it.
    assert outcome.passed, outcome.reason
    assert not any(t.exists() for t in targets), [str(t) for t in targets if t.exists()]


@pytest.mark.timeout(60)
def test_secrets_of_the_parent_are_not_visible(sandbox, monkeypatch):
    secret = f"sk-test-{uuid.uuid4().hex}"
    for key in ("TINKER_API_KEY", "WANDB_API_KEY", "HF_TOKEN", "OPENAI_API_KEY"):
        monkeypatch.setenv(key, secret)
    program = (
        "import os, glob\n"
        "print(dict(os.environ))\n"
        "for path in glob.glob('/proc/*/environ'):\n"
        "    try:\n        print(open(path, 'rb').read())\n    except OSError:\n        pass\n"
        + ADD
    )
    outcome = _run(sandbox, program)
    assert outcome.passed
    assert "TINKER_API_KEY" not in outcome.stdout_tail and secret not in outcome.stdout_tail + outcome.stderr_tail


@pytest.mark.timeout(60)
def test_files_of_the_project_and_the_home_are_hidden(sandbox, monkeypatch):
    import shutil
    import tempfile

    # Outside /tmp (the sandbox has its own /tmp anyway): a project folder beside this checkout's files.
    project = Path(tempfile.mkdtemp(prefix=".test-sandbox-project-", dir=ROOT))
    project.chmod(0o755)  # readable by anyone, as a checkout usually is
    (project / ".env").write_text("TINKER_API_KEY=sk-in-a-file\n")
    home_file = Path(os.path.expanduser("~")) / f".tinkerx-test-{uuid.uuid4().hex}"
    home_file.write_text("secret\n")
    for file in (project / ".env", home_file):
        file.chmod(0o644)
    monkeypatch.chdir(project)  # the folder tinkerx runs from, as a project with its .env
    executor = LocalProcessExecutor(SMALL, workers=1, namespaces=True)
    try:
        program = "".join(
            f"try:\n    open({str(p)!r}).read()\n    print('LEAK', {str(p)!r})\nexcept OSError:\n    print('hidden')\n"
            for p in (project / ".env", home_file)
        ) + ADD
        outcome = executor.run(Job(program, ADD_TESTS))
    finally:
        executor.close()
        home_file.unlink()
        shutil.rmtree(project)
    assert outcome.passed, outcome.reason
    assert outcome.stdout_tail.split() == ["hidden", "hidden"], outcome.stdout_tail


@pytest.mark.timeout(60)
def test_no_network_to_a_port_the_parent_listens_on(sandbox):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        program = f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n" + ADD
        outcome = _run(sandbox, program)
        assert outcome.status == "error" and ("unreachable" in outcome.reason or "refused" in outcome.reason), outcome.reason
        with pytest.raises(socket.timeout):
            server.accept()


@pytest.mark.timeout(90)
def test_killing_its_parent_process_group_leaves_the_grader_alive(sandbox):
    # The grader runs in a helper process of its own session; the program is told that session's
    # process group and tries to kill it. A broken sandbox would kill only the helper.
    helper = (
        "import os, sys\n"
        "from tinkerx.sandbox import Job, Limits, LocalProcessExecutor\n"
        "ex = LocalProcessExecutor(Limits(timeout_s=6, cpu_s=3, memory_mb=256, processes=32), namespaces=True)\n"
        "pg = os.getpgid(0)\n"
        "prog = f'import os, signal\\nfor g in ({pg}, os.getpgid(0)):\\n    try:\\n        os.killpg(g, signal.SIGKILL)\\n    except OSError:\\n        pass\\n'\n"
        "o = ex.run(Job(prog + 'def f():\\n    return 1\\n', ('assert f() == 1',)))\n"
        "print('GRADER-ALIVE', o.status)\n"
    )
    done = subprocess.run([sys.executable, "-c", helper], capture_output=True, text=True, timeout=60,
                          start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "GRADER-ALIVE" in done.stdout, done.stderr[-500:]
    assert done.stdout.split()[-1] in ("killed", "error", "passed")  # its own group may die; the grader may not


@pytest.mark.timeout(60)
def test_a_background_process_left_behind_is_killed(sandbox):
    marker = f"{time.time() % 1000 + 3000:.6f}"
    outcome = _run(sandbox, f"import os\nos.system('sleep {marker} &')\n" + ADD)
    assert outcome.passed
    time.sleep(0.5)
    assert marker not in _ps_args(), "the background sleep survived the execution"


@pytest.mark.timeout(60)
def test_printing_1_gb_is_cut_off(sandbox):
    started = time.perf_counter()
    outcome = _run(sandbox, "import sys\nfor _ in range(1024 * 16):\n    sys.stdout.write('x' * 65536)\n" + ADD)
    assert outcome.status == "killed" and "output" in outcome.reason
    assert len(outcome.stdout_tail) <= 2000 and time.perf_counter() - started < 5


@pytest.mark.timeout(60)
@pytest.mark.parametrize("leave", ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "raise SystemExit\n",
                                   "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"])
def test_leaving_before_the_asserts_is_no_pass(sandbox, leave):
    outcome = _run(sandbox, ADD + leave)
    assert outcome.status in ("error", "killed") and outcome.tests_passed == 0 and outcome.fraction == 0.0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("patch", [
    "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\n",
    "import builtins\nbuiltins.len = lambda x: 3\nlen = lambda x: 3\n",
    "import builtins, sys\nsys.excepthook = lambda *a: None\nbuiltins.__build_class__ = None\n",
    "import os\nos.write = lambda fd, data: len(data)\n",
    "import sys, os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'0' * 32 + b' done 1 1\\n')\n    except OSError:\n        pass\n",
    "print('done 1 1')\n",
])
def test_patching_builtins_or_forging_a_report_does_not_pass(sandbox, patch):
    program = patch + "def add(a, b):\n    return 0\n"
    outcome = _run(sandbox, program, ("assert len([1]) == 1 and add(1, 2) == 3",))
    assert outcome.status in ("failed", "error") and outcome.tests_passed == 0


@pytest.mark.timeout(30)
def test_without_namespaces_rlimits_and_an_empty_environment_still_hold(monkeypatch):
    # Benign programs only: nothing here needs isolation to be safe.
    monkeypatch.setenv("TINKER_API_KEY", "sk-fallback-secret")
    executor = LocalProcessExecutor(SMALL, workers=1, namespaces=False)
    outcome = executor.run(Job("import os\nprint(sorted(os.environ))\n" + ADD, ADD_TESTS))
    assert outcome.passed and "TINKER_API_KEY" not in outcome.stdout_tail
    assert executor.run(Job("x = bytearray(8 * 1024 ** 3)\n", ())).status == "error"
    assert executor.run(Job("while True:\n    pass\n", ())).status == "timeout"

"""The sandbox's hostile programs graded by tinkerx running as an ordinary user, not root.

CI runs as root, where executions drop to uid 65534 inside their namespaces; a user's machine runs
tinkerx as that user, where the namespace's one mapped uid is the user's own. This test runs the
grader as uid/gid 65534 (switched before tinkerx is imported) against a home and a project folder
that user owns, so a program that escaped its sandbox could read and write them as the user: it
proves the isolation the README claims for non-root users. Skips, saying why, only where this
process cannot switch users or no Python runs as the unprivileged user.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534
ADD = "def add(a, b):\n    return a + b\n"

# name -> the program (each followed by ADD and graded on add's tests). {port}, {marker}, {home},
# {project}, {tmp} and {run} are filled in below.
HOSTILE = {
    "infinite_loop": "while True:\n    pass\n",
    "fork_loop": "import os\nfor i in range(2000):\n    if os.fork() == 0:\n        os.execv('/bin/sleep', ['sleep', '{marker}1'])\n",
    "allocate_8_gb": "x = bytearray(8 * 1024 ** 3)\n",
    "write_5_gb": "with open('big', 'wb') as f:\n    for _ in range(5 * 1024):\n        f.write(b'0' * 1024 * 1024)\n",
    "write_outside": (
        "for t in ({home!r} + '/ESCAPED', {project!r} + '/ESCAPED', {run!r} + '/ESCAPED', {tmp!r} + '/ESCAPED'):\n"
        "    try:\n        open(t, 'w').write('x')\n        print('WROTE', t)\n    except OSError:\n        pass\n"
    ),
    "read_secrets": (
        "import os, glob\nprint(dict(os.environ))\n"
        "for p in [{home!r} + '/.netrc', {project!r} + '/.env'] + glob.glob('/proc/*/environ'):\n"
        "    try:\n        print(open(p).read())\n    except OSError:\n        pass\n"
    ),
    # What only the namespace's root could do: uncover the home and project and make / writable.
    "unmount_and_remount": (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "for p in ({home!r}, {project!r}, '/tmp'):\n    libc.umount2(p.encode(), 2)\n"
        "libc.mount(None, b'/', None, 32 | 4096, None)\n"
        "libc.unshare(0x10000000 | 0x00020000)\n"  # its own user + mount namespace: the mounts come locked
        "for p in ({home!r}, {project!r}, '/tmp'):\n    libc.umount2(p.encode(), 2)\n"
        "libc.mount(None, b'/', None, 32 | 4096, None)\n"
        "for p in ({home!r} + '/.netrc', {project!r} + '/.env'):\n"
        "    try:\n        print(open(p).read())\n    except OSError:\n        pass\n"
        "for t in ({home!r} + '/ESCAPED', {project!r} + '/ESCAPED', {tmp!r} + '/ESCAPED'):\n"
        "    try:\n        open(t, 'w').write('x')\n        print('WROTE', t)\n    except OSError:\n        pass\n"
    ),
    "socket_to_parent": "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n",
    "kill_parent_group": (
        "import os, signal\nfor g in ({grader_pgid}, os.getpgid(0), -1):\n"
        "    try:\n        os.killpg(g, signal.SIGKILL) if g != -1 else os.kill(-1, signal.SIGKILL)\n    except OSError:\n        pass\n"
    ),
    "background_sleep": "import os\nos.system('sleep {marker}2 &')\n",
    "print_1_gb": "import sys\nfor _ in range(1024 * 16):\n    sys.stdout.write('x' * 65536)\n",
    "exit_early": "import sys\nsys.exit(0)\n",
    "patch_builtins": "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {{}})\n",
}
# The honest result of each: a status, and for the ones that load and finish, a pass (they end
# with a correct add) with nothing of what they looked for in their output.
EXPECTED = {
    "infinite_loop": {"timeout"},
    "fork_loop": {"error"},
    "allocate_8_gb": {"error"},
    "write_5_gb": {"error"},
    "write_outside": {"passed"},
    "read_secrets": {"passed"},
    "unmount_and_remount": {"passed"},
    "socket_to_parent": {"error"},
    "kill_parent_group": {"passed", "killed", "error"},
    "background_sleep": {"passed"},
    "print_1_gb": {"killed"},
    "exit_early": {"error"},
    "patch_builtins": {"passed"},
}

GRADER = """
import json, os, sys
assert os.getuid() != 0 and os.geteuid() != 0, 'the grader must not run as root'
from tinkerx.sandbox import Job, Limits, LocalProcessExecutor, namespaces_available
if not namespaces_available():
    print(json.dumps({'no_namespaces': True}))
    raise SystemExit(0)
executor = LocalProcessExecutor(Limits(timeout_s=6, cpu_s=3, memory_mb=256, file_mb=16, tmp_mb=32, processes=32, output_mb=1), workers=1, namespaces=True)
programs = json.loads(sys.stdin.read())
for name, program in programs.items():
    program = program.replace('GRADER_PGID', str(os.getpgid(0)))  # the grader's own process group
    o = executor.run(Job(program, ('assert add(1, 2) == 3', 'assert add(2, 2) == 4')))
    print(json.dumps({'name': name, 'status': o.status, 'reason': o.reason, 'out': o.stdout_tail + o.stderr_tail, 'uid': os.getuid()}), flush=True)
executor.close()
print(json.dumps({'grader_alive': True}))
"""


def _unprivileged() -> dict:
    """Popen arguments that run a command as the unprivileged user (none when already one)."""
    if os.geteuid() != 0:
        return {}
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def _python_for(switch: dict) -> str | None:
    """An interpreter (>= 3.9: the fork server passes file descriptors) the unprivileged user can
    run: this one, unless it lives where that user cannot reach (a pyenv under /root)."""
    for python in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        try:
            done = subprocess.run([python, "-I", "-c", "import sys; assert sys.version_info >= (3, 9)"],
                                  capture_output=True, timeout=30, cwd="/", **switch)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return python
    return None


def _ps_args() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout


@pytest.mark.timeout(240)
def test_hostile_programs_graded_by_an_unprivileged_user_are_contained():
    if not sys.platform.startswith("linux"):
        pytest.skip("the sandbox's isolation is Linux's; elsewhere the README says what holds")
    switch = _unprivileged()
    python = _python_for(switch)
    if python is None:
        pytest.skip("no Python >= 3.9 that uid 65534 can run, so the grader cannot run unprivileged here")
    owner = (NOBODY, NOBODY) if switch else (os.getuid(), os.getgid())
    # A world the unprivileged user owns, outside /tmp's usual private folders: its home, a project
    # it runs from (with a .env), a run folder, a copy of tinkerx it can read (this checkout may be
    # under /root), and a folder in /tmp.
    world = Path(tempfile.mkdtemp(prefix="tinkerx-unprivileged-", dir="/tmp"))
    secret = f"sk-unprivileged-{uuid.uuid4().hex}"
    home, project, run, tmp, code = (world / n for n in ("home", "project", "project/outputs/run", "tmp", "code"))
    marker = f"{time.time() % 1000 + 4000:.4f}"
    try:
        shutil.copytree(ROOT / "tinkerx", code / "tinkerx", ignore=shutil.ignore_patterns("__pycache__"))
        for folder in (home, run, tmp):
            folder.mkdir(parents=True)
        (home / ".netrc").write_text(f"machine api password {secret}\n")
        (project / ".env").write_text(f"TINKER_API_KEY={secret}\n")
        for path in [world, *world.rglob("*")]:
            os.chown(path, *owner)
            path.chmod(0o755 if path.is_dir() else 0o600 if path.name in (".env", ".netrc") else 0o644)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.settimeout(0.5)
            fill = {"port": listener.getsockname()[1], "marker": marker, "home": str(home), "project": str(project),
                    "run": str(run), "tmp": str(tmp), "grader_pgid": "GRADER_PGID"}
            programs = {name: text.format(**fill) + ADD for name, text in HOSTILE.items()}
            env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(code), "LANG": "C.UTF-8",
                   "TINKER_API_KEY": secret, "HF_TOKEN": secret, "OPENAI_API_KEY": secret, "WANDB_API_KEY": secret}
            done = subprocess.run([python, "-c", GRADER], input=json.dumps(programs), capture_output=True, text=True,
                                  timeout=200, cwd=project, env=env, start_new_session=True, **switch)
            with pytest.raises(socket.timeout):
                listener.accept()  # nothing connected to the port the test listens on
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if lines and lines[0].get("no_namespaces"):
            pytest.skip("no user namespaces for an unprivileged user here (kernel or policy refuses them)")
        assert lines and lines[-1] == {"grader_alive": True}, done.stderr[-1500:]
        results = {line["name"]: line for line in lines[:-1]}
        assert set(results) == set(HOSTILE)
        for name, result in results.items():
            assert result["uid"] != 0
            assert result["status"] in EXPECTED[name], (name, result["status"], result["reason"])
            assert secret not in result["out"] and "WROTE" not in result["out"], (name, result["out"][-500:])
        assert "Resource temporarily unavailable" in results["fork_loop"]["reason"]  # the process limit held
        assert "MemoryError" in results["allocate_8_gb"]["reason"]
        assert "File too large" in results["write_5_gb"]["reason"]
        assert "unreachable" in results["socket_to_parent"]["reason"] or "refused" in results["socket_to_parent"]["reason"]
        time.sleep(0.5)
        assert marker not in _ps_args(), "a process the programs started survived them"
        escaped = [str(p) for p in world.rglob("ESCAPED")] + [str(p) for p in Path("/tmp").glob("ESCAPED")]
        assert not escaped, escaped
        assert (project / ".env").read_text() == f"TINKER_API_KEY={secret}\n"
    finally:
        shutil.rmtree(world, ignore_errors=True)

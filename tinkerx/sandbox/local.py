"""The default executor: each job in a fresh, limited, isolated child process on this machine.

What is in force (see the README's "Code" section): on Linux with user namespaces, a new user,
mount, network, PID, IPC and UTS namespace per execution (no network at all, the whole file system
read-only except a private size-limited /tmp, home folders hidden, every process it started killed
when it ends), an unprivileged uid when tinkerx runs as root (so the process-count limit holds),
rlimits on CPU time, address space, file size, open files and processes, an empty environment, and
a wall-clock limit. Elsewhere (macOS, or namespaces refused): rlimits, its own session killed as a
group at the end, a fresh temporary folder and the empty environment only; a warning says so once.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tinkerx.errors import ConfigError
from tinkerx.sandbox.executor import Job, Outcome

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
_LAUNCHER = _HERE / "_launcher.py"
_HARNESS_SOURCE = (_HERE / "_harness.py").read_text()
_SITE_PACKAGES = [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
_TAIL = 2000  # characters of stdout / stderr kept on an outcome


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock, start-up included
    cpu_s: int = 10
    memory_mb: int = 1024  # address space (RLIMIT_AS)
    file_mb: int = 16  # largest file the program may write (RLIMIT_FSIZE)
    tmp_mb: int = 64  # its whole private /tmp (namespaces only)
    processes: int = 32  # RLIMIT_NPROC, counted inside its own user namespace
    output_mb: float = 1.0  # stdout + stderr beyond this ends the execution ("killed")

    def __post_init__(self) -> None:
        for name in ("timeout_s", "cpu_s", "memory_mb", "file_mb", "tmp_mb", "processes", "output_mb"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"reward.executor.limits.{name} must be > 0, got {getattr(self, name)}")


def namespaces_available() -> bool:
    """Whether this machine lets a process make user + mount + network + PID namespaces (cached)."""
    global _NAMESPACES
    if _NAMESPACES is None:
        _NAMESPACES = sys.platform.startswith("linux") and _probe()
        if not _NAMESPACES:
            log.warning(
                "code sandbox: no Linux namespaces here (%s); executions get rlimits, their own session "
                "and an empty environment only: no network or file-system isolation. Use a container "
                "executor (reward.executor._target_) for untrusted models", sys.platform,
            )
    return _NAMESPACES


_NAMESPACES: bool | None = None
_PROBE_LOCK = threading.Lock()


def _probe() -> bool:
    with _PROBE_LOCK:
        probe = LocalProcessExecutor(Limits(timeout_s=20), workers=1, namespaces=True)
        outcome = probe.run(Job("x = 1", ("assert x == 1",)))
        probe.close()
        if not outcome.passed:
            log.debug("code sandbox: namespace probe failed: %s %s", outcome.reason, outcome.stderr_tail)
        return outcome.passed


class LocalProcessExecutor:
    """Runs jobs as sandboxed child processes, at most ``workers`` at a time.

    ``workers`` is capped at the machine's cores (minus one when it has more than two), so grading
    a training step's batch never oversubscribes the machine the trainer runs on. ``namespaces``:
    None detects them, False never uses them (rlimits only), True uses them unchecked (where they are
    refused every execution ends "killed", its reason naming the failed set-up step). ``uid`` is the
    unprivileged user executions run as when tinkerx runs as root.
    """

    def __init__(self, limits: Limits | None = None, workers: int = 4, namespaces: bool | None = None, uid: int = 65534, python: str | None = None) -> None:
        if workers < 1:
            raise ConfigError(f"reward.workers must be >= 1, got {workers}")
        self.limits = limits or Limits()
        cores = os.cpu_count() or 1
        self.workers = max(1, min(workers, cores - 1 if cores > 2 else cores))
        self._namespaces = namespaces
        self.uid = uid
        self.python = python or os.path.realpath(sys.executable)
        self._lock = threading.Lock()
        self._idle: list[_ForkServer] = []

    @property
    def namespaces(self) -> bool:
        if self._namespaces is None:
            self._namespaces = namespaces_available()
        return self._namespaces

    def run_many(self, jobs: Sequence[Job]) -> list[Outcome]:
        if len(jobs) <= 1 or self.workers == 1:
            return [self.run(job) for job in jobs]
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(self.run, jobs))

    def run(self, job: Job) -> Outcome:
        nonce = secrets.token_hex(16)
        try:
            server = self._take_server()
        except OSError as e:  # out of processes or file descriptors on the grader's side
            return Outcome("killed", reason=f"sandbox could not start: {e}", tests_total=len(job.tests))
        workdir = None if self.namespaces else tempfile.mkdtemp(prefix="tinkerx-sandbox-")
        try:
            return self._run(server, job, nonce, workdir)
        except OSError as e:
            server.close()
            return Outcome("killed", reason=f"sandbox failed: {e}", tests_total=len(job.tests))
        finally:
            self._give_back(server)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)

    def _take_server(self) -> _ForkServer:
        with self._lock:
            while self._idle:
                server = self._idle.pop()
                if server.alive():
                    return server
        return _ForkServer(self.python, self._settings())

    def _give_back(self, server: _ForkServer) -> None:
        if server.alive():
            with self._lock:
                self._idle.append(server)
        else:
            server.close()

    def close(self) -> None:
        """Stops the idle fork servers (they also stop by themselves when this process ends)."""
        with self._lock:
            servers, self._idle = self._idle, []
        for server in servers:
            server.close()

    def _settings(self) -> dict:
        limits = self.limits
        drop_uid = self.namespaces and os.geteuid() == 0
        prefixes = {sys.prefix, sys.base_prefix, str(Path(self.python).parent.parent)}
        return {
            "namespaces": self.namespaces,
            "harness": _HARNESS_SOURCE,
            "drop_uid": drop_uid,
            "uid": self.uid,
            "timeout_s": float(limits.timeout_s),
            "cpu_s": int(limits.cpu_s),
            "memory_mb": int(limits.memory_mb),
            "file_mb": int(limits.file_mb),
            "tmp_mb": int(limits.tmp_mb),
            "processes": int(limits.processes),
            # The homes and the folder tinkerx runs from (a project's .env, the run folders) are not
            # the program's to read; the interpreter's folders are bound back if they lie inside.
            "hide_paths": sorted({p for p in ("/root", "/home", os.path.expanduser("~"), os.getcwd()) if p not in ("/", "")}),
            "keep_paths": sorted(os.path.realpath(p) for p in prefixes),
        }

    def _run(self, server: _ForkServer, job: Job, nonce: str, workdir: str | None) -> Outcome:
        started = time.perf_counter()
        request = json.dumps({"nonce": nonce, "program": job.program, "setup": job.setup, "tests": list(job.tests),
                              "keep_names": list(job.keep_names), "module_name": "solution", "site_packages": _SITE_PACKAGES}).encode()
        pipes = [os.pipe() for _ in range(4)]  # stdin, stdout, stderr, report
        child_ends = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]]
        try:
            pid = server.start({"workdir": workdir}, child_ends)
        finally:
            for fd in child_ends:
                os.close(fd)
        stdin, out_r, err_r, report_r = pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][0]
        try:
            if pid is None:
                os.close(stdin)
                return Outcome("killed", reason="sandbox fork server failed to start a job", tests_total=len(job.tests), seconds=time.perf_counter() - started)
            return self._collect(server, pid, stdin, request, (out_r, err_r, report_r), nonce, len(job.tests), started)
        finally:
            for fd in (out_r, err_r, report_r):
                os.close(fd)

    def _collect(self, server: _ForkServer, pid: int, stdin: int, request: bytes, fds: tuple[int, int, int], nonce: str, total: int, started: float) -> Outcome:
        limits = self.limits
        deadline = started + limits.timeout_s
        max_output = int(limits.output_mb * 1024 * 1024)
        out, err, report = bytearray(), bytearray(), bytearray()
        output_bytes, over_output, timed_out = 0, False, False
        try:
            _write_all(stdin, request)
        except OSError:
            pass  # it died at once; its exit status says why
        finally:
            os.close(stdin)
        selector = selectors.DefaultSelector()
        for fd, buffer in zip(fds, (out, err, report)):
            selector.register(fd, selectors.EVENT_READ, buffer)
        selector.register(server.sock, selectors.EVENT_READ, None)
        code: int | None = None
        open_streams = 3
        while open_streams:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(min(remaining, 1.0)):
                if key.data is None:  # the server: L has ended
                    code = server.read_status()
                    selector.unregister(key.fileobj)
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                buffer = key.data
                if buffer is report:
                    if len(report) < 1_000_000:
                        report.extend(chunk)
                    continue
                output_bytes += len(chunk)
                buffer.extend(chunk)
                if len(buffer) > 2 * _TAIL * 4:
                    del buffer[: len(buffer) - _TAIL * 4]
                if output_bytes > max_output:
                    over_output = True
            if over_output or (code is not None and not self.namespaces):
                break  # without a PID namespace a leftover child may hold the pipes open: L's end is the end
        selector.close()
        _kill_group(pid)
        if code is None:
            code = server.read_status(timeout=10)
        seconds = time.perf_counter() - started
        tails = {"stdout_tail": _tail(out), "stderr_tail": _tail(err), "seconds": seconds}
        results, status, reason = _parse_report(bytes(report), nonce, total)
        passed = sum(results)
        counts = {"tests_passed": passed, "tests_total": total, "test_results": tuple(results)}
        if status in ("compile_error", "error"):
            return Outcome(status, reason=reason, **counts, **tails)
        if status == "done" and code == 0:
            return Outcome("passed" if passed == total else "failed", reason=reason, **counts, **tails)
        if timed_out:
            return Outcome("timeout", reason=f"wall clock over {limits.timeout_s:g}s", **counts, **tails)
        if over_output:
            return Outcome("killed", reason=f"output over {limits.output_mb:g} MB", **counts, **tails)
        if code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL) and seconds >= limits.cpu_s * 0.9:
            return Outcome("timeout", reason=f"CPU time over {limits.cpu_s}s", **counts, **tails)
        if code == 121:
            return Outcome("killed", reason="sandbox set-up failed: " + _tail(err).strip()[-200:], **counts, **tails)
        if code is not None and code >= 128:
            return Outcome("killed", reason=f"ended by signal {code - 128}", **counts, **tails)
        return Outcome("error", reason=reason or f"ended (exit status {code}) before its tests finished", **counts, **tails)


class _ForkServer:
    """One warm ``_launcher.py`` process: forks a sandboxed execution per job, so no interpreter
    starts per execution. Used by one thread at a time (the executor's pool of idle servers)."""

    def __init__(self, python: str, settings: dict) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [python, "-I", "-S", str(_LAUNCHER), json.dumps(settings), str(theirs.fileno())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd="/", start_new_session=True, close_fds=True,
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        self._pending = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def start(self, header: dict, fds: list[int]) -> int | None:
        """Sends a job's pipes; L's pid, or None when the server has gone."""
        try:
            socket.send_fds(self.sock, [json.dumps(header).encode()], fds)
            line = self._line(timeout=30)
        except OSError:
            line = None
        if line is None or not line.startswith("pid "):
            self.close()
            return None
        return int(line.split()[1])

    def read_status(self, timeout: float | None = 0.0) -> int | None:
        line = self._line(timeout)
        if line is None or not line.startswith("status "):
            self.close()
            return None
        return int(line.split()[1])

    def _line(self, timeout: float | None) -> str | None:
        self.sock.settimeout(timeout if timeout else None)
        try:
            while b"\n" not in self._pending:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return None
                self._pending += chunk
        except (TimeoutError, OSError):
            return None
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _parse_report(report: bytes, nonce: str, total: int) -> tuple[list[bool], str, str]:
    """(per-test results, 'done' | 'compile_error' | 'error' | '', first reason) from the lines
    carrying this job's nonce; any other line is ignored (the program cannot know the nonce)."""
    results = [False] * total
    status, reason = "", ""
    prefix = nonce.encode() + b" "
    for line in report.splitlines():
        if not line.startswith(prefix):
            continue
        words = line[len(prefix):].decode("utf-8", "replace").split(" ", 3)
        if words[0] in ("compile_error", "error"):
            return results, words[0], " ".join(words[1:])
        if words[0] == "test" and len(words) >= 3 and words[1].isdigit() and int(words[1]) < total:
            results[int(words[1])] = words[2] == "ok"
            if words[2] != "ok" and not reason:
                reason = f"test {words[1]}: {words[3] if len(words) > 3 else ''}".strip()
        elif words[0] == "done":
            status = "done"
    return results, status, reason


def _kill_group(pid: int) -> None:
    """SIGKILL the execution's session (its process group); the PID namespace takes the rest."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(buffer: bytearray) -> str:
    return bytes(buffer[-_TAIL * 4:]).decode("utf-8", "replace")[-_TAIL:]

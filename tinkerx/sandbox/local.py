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
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

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
                raise ConfigError(f"reward.limits.{name} must be > 0, got {getattr(self, name)}")


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
        outcome = LocalProcessExecutor(Limits(timeout_s=20), workers=1, namespaces=True).run(Job("x = 1", ("assert x == 1",)))
        if not outcome.passed:
            log.debug("code sandbox: namespace probe failed: %s %s", outcome.reason, outcome.stderr_tail)
        return outcome.passed


class LocalProcessExecutor:
    """Runs jobs as sandboxed child processes, at most ``workers`` at a time.

    ``workers`` is capped at the machine's cores (minus one when it has more than two), so grading
    a training step's batch never oversubscribes the machine the trainer runs on. ``namespaces``:
    None detects them, False never uses them (rlimits only), True requires them. ``uid`` is the
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
        workdir = None if self.namespaces else tempfile.mkdtemp(prefix="tinkerx-sandbox-")
        try:
            return self._run(job, nonce, workdir)
        finally:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)

    def _settings(self, workdir: str | None, report_fd: int) -> dict:
        limits = self.limits
        drop_uid = self.namespaces and os.geteuid() == 0
        prefixes = {sys.prefix, sys.base_prefix, str(Path(self.python).parent.parent)}
        return {
            "namespaces": self.namespaces,
            "python": self.python,
            "harness": _HARNESS_SOURCE,
            "report_fd": report_fd,
            "workdir": workdir,
            "drop_uid": drop_uid,
            "uid": self.uid,
            "cpu_s": int(limits.cpu_s),
            "memory_mb": int(limits.memory_mb),
            "file_mb": int(limits.file_mb),
            "tmp_mb": int(limits.tmp_mb),
            "processes": int(limits.processes),
            "hide_paths": sorted({p for p in ("/root", "/home", os.path.expanduser("~")) if p not in ("/", "")}),
            "keep_paths": sorted(os.path.realpath(p) for p in prefixes),
        }

    def _run(self, job: Job, nonce: str, workdir: str | None) -> Outcome:
        started = time.perf_counter()
        report_r, report_w = os.pipe()  # pass_fds keeps its number in the child
        request = json.dumps({"nonce": nonce, "report_fd": report_w, "program": job.program, "setup": job.setup,
                              "tests": list(job.tests), "keep_names": list(job.keep_names), "module_name": "solution",
                              "site_packages": _SITE_PACKAGES}).encode()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        proc = subprocess.Popen(
            [self.python, "-I", "-S", str(_LAUNCHER), json.dumps(self._settings(workdir, report_w))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=workdir or "/", start_new_session=True, close_fds=True,
            pass_fds=(report_w,),
        )
        os.close(report_w)
        try:
            return self._collect(proc, request, report_r, nonce, len(job.tests), started)
        finally:
            os.close(report_r)
            _kill_group(proc)

    def _collect(self, proc: subprocess.Popen, request: bytes, report_r: int, nonce: str, total: int, started: float) -> Outcome:
        limits = self.limits
        deadline = started + limits.timeout_s
        max_output = int(limits.output_mb * 1024 * 1024)
        out, err, report = bytearray(), bytearray(), bytearray()
        output_bytes, over_output, timed_out = 0, False, False
        try:
            proc.stdin.write(request)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # it died at once; its exit status says why
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        selector.register(report_r, selectors.EVENT_READ, report)
        open_streams = 3
        while open_streams:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(min(remaining, 1.0)):
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
            if over_output:
                break
        selector.close()
        _kill_group(proc)
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        proc.stdout.close()
        proc.stderr.close()
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
        if code is not None and code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL, -signal.SIGXCPU) and seconds >= limits.cpu_s * 0.9:
            return Outcome("timeout", reason=f"CPU time over {limits.cpu_s}s", **counts, **tails)
        if code == 121:
            return Outcome("killed", reason="sandbox set-up failed: " + _tail(err).strip()[-200:], **counts, **tails)
        if code is not None and code >= 128:
            return Outcome("killed", reason=f"ended by signal {code - 128}", **counts, **tails)
        return Outcome("error", reason=reason or f"ended (exit status {code}) before its tests finished", **counts, **tails)


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


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the execution's session (its process group); the PID namespace takes the rest."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(buffer: bytearray) -> str:
    return bytes(buffer[-_TAIL * 4:]).decode("utf-8", "replace")[-_TAIL:]

"""The executor contract: run a program with its setup and tests, say what happened.

An executor is any object with ``run(job: Job) -> Outcome`` and ``run_many(jobs) -> list[Outcome]``;
``LocalProcessExecutor`` (tinkerx/sandbox/local.py) is the default. A container or remote sandbox
service plugs in as the ``executor`` of ``reward=code_tests`` by its ``_target_`` (see the README).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

# passed: every test ran and passed. failed: the program loaded, at least one test failed.
# compile_error: the program is not valid Python. error: it raised (or exited) while loading, or
# the process ended without finishing the tests. timeout: wall-clock or CPU limit. killed: ended by
# the sandbox for another reason (output limit, a signal).
OUTCOMES = ("passed", "failed", "compile_error", "error", "timeout", "killed")


@dataclass(frozen=True)
class Job:
    """One execution: ``program`` then ``setup`` (MBPP's test_setup_code: objects the tests use,
    built with the program's classes) run as one module, then each of ``tests`` (Python source,
    usually ``assert`` lines) in that module's namespace. ``keep_names`` are globals the tests
    may take from the program even though they shadow a builtin (an entry point named ``sum``)."""

    program: str
    tests: tuple[str, ...]
    setup: str = ""
    keep_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    status: str
    tests_passed: int = 0
    tests_total: int = 0
    reason: str = ""  # one line: the first failure, the exception, the limit hit
    stdout_tail: str = ""
    stderr_tail: str = ""
    seconds: float = 0.0
    test_results: tuple[bool, ...] = field(default=(), repr=False)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def fraction(self) -> float:
        return self.tests_passed / self.tests_total if self.tests_total else float(self.passed)


class Executor(Protocol):
    def run(self, job: Job) -> Outcome: ...

    def run_many(self, jobs: Sequence[Job]) -> list[Outcome]: ...

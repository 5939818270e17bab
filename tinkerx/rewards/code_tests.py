"""``reward=code_tests``: run the program in a completion against the problem's tests, in a sandbox.

The ground truth is a code problem's tests as JSON (``problem_json``; the MBPP and HumanEval data
sets write it into ``Example.answer``): ``tests`` (Python source each, usually one ``assert``),
``setup`` (run after the program, before the tests), ``prefix`` (text the completion continues,
HumanEval's prompt) and ``entry_point`` (the function the tests call). A ground truth that is plain
Python with ``assert`` lines (the ``answer`` of a ``dataset=jsonl`` file, or of MCP's ``init_grpo``)
is run as one test.

Which code is run (``extract``):
- ``function_block`` (default): the last fenced block that defines a function the tests call (the
  entry point, or a name the asserts call), else the last block. Chat models often follow their
  solution with a usage example in a block of its own; grading that example instead of the function
  would score a correct solution 0.
- ``last_block``: the last fenced block (```python, ```py or a bare ```), an unclosed last fence (a
  completion cut at max_tokens) running to the end; the whole completion when it has none.
- ``first_block``: the first fenced block instead, same fallbacks.
- ``raw``: the completion as it is.
With a ``prefix`` the program is the prefix plus the code, unless the code defines the entry point
itself (a chat model writing the whole function), in which case the prefix's own function is
stubbed and the code's definition wins, the prefix's imports and helpers kept.

Reward: 1.0 when every test passes, else 0.0; with ``partial`` the fraction of tests passed. A
compile error, an exception while loading, a timeout or a kill scores 0 and is counted per kind in
``counts``; ``metrics()`` gives a trainer each step's counts (``code/...``, as evaluations report).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tinkerx.errors import ConfigError
from tinkerx.sandbox import OUTCOMES, Executor, Job, LocalProcessExecutor, Outcome

EXTRACT_RULES = ("function_block", "last_block", "first_block", "raw")
_TOP_LEVEL_DEF = re.compile(r"^(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(", re.MULTILINE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_LANGUAGES = ("", "python", "py", "python3")


def problem_json(tests: Sequence[str], setup: str = "", prefix: str = "", entry_point: str = "", keep_names: Sequence[str] = ()) -> str:
    """A code problem as the ground-truth string ``CodeTestsReward`` reads. ``keep_names``: functions
    the tests call that share a builtin's name (MBPP 126's ``sum``); any other builtin a program
    redefines is taken away from the tests, so ``len = lambda x: 3`` cannot answer them."""
    return json.dumps({"tests": list(tests), "setup": setup, "prefix": prefix, "entry_point": entry_point, "keep_names": list(keep_names)})


def parse_problem(ground_truth: str) -> dict[str, Any]:
    """The problem a ground truth holds: ``problem_json``'s object, or plain Python test code (the
    ``answer`` of a JSON-lines file: its ``assert`` lines), run as one test. ValueError otherwise."""
    text = ground_truth.strip()
    if text.startswith("{"):
        problem = json.loads(text)
        if not isinstance(problem, dict) or not isinstance(problem.get("tests"), list) or not problem["tests"]:
            raise ValueError("a code problem needs a non-empty list 'tests'")
        return problem
    if re.search(r"^\s*assert\b", text, re.M):
        return {"tests": [text]}
    raise ValueError("a code problem is problem_json(...) or Python assert lines")


def defined_names(code: str) -> list[str]:
    """Top-level functions and classes a (reference) program defines; [] when it does not parse."""
    import ast
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old-style escapes in MBPP's references ("\d")
            tree = ast.parse(code)
    except SyntaxError:
        return []
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def called_names(tests: Sequence[str]) -> set[str]:
    """Names the tests call (``assert remove_Occ("hello", "l") == "heo"`` -> remove_Occ); a test
    that does not parse is read with a regular expression instead."""
    import ast

    names: set[str] = set()
    for test in tests:
        try:
            tree = ast.parse(test)
        except SyntaxError:
            names.update(re.findall(r"([A-Za-z_]\w*)\s*\(", test))
            continue
        names.update(n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name))
    return names


def extract_code(completion: str, rule: str = "function_block", wanted: Sequence[str] | set[str] = ()) -> str:
    """The code of ``completion`` to run; ``wanted``: the functions the tests call (``function_block``)."""
    if rule == "raw":
        return completion
    blocks = [body for language, body in _FENCE.findall(completion) if language.lower() in _CODE_LANGUAGES]
    if not blocks:
        return completion
    if rule == "first_block":
        return blocks[0]
    if rule == "function_block" and wanted:
        # a regular expression, not ast: a block cut at max_tokens still names what it defines
        defining = [b for b in blocks if set(_TOP_LEVEL_DEF.findall(b)) & set(wanted)]
        if defining:
            return defining[-1]
    return blocks[-1]


def build_program(code: str, prefix: str, entry_point: str) -> str:
    if not prefix:
        return code
    if entry_point and re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        # The prefix ends inside the function's docstring-only body: ``pass`` closes it.
        return prefix.rstrip() + "\n    pass\n\n" + code
    return prefix + code


class CodeTestsReward:
    name = "code_tests"

    def __init__(self, executor: Executor | None = None, partial: bool = False, extract: str = "function_block", workers: int = 4) -> None:
        if extract not in EXTRACT_RULES:
            raise ConfigError(f"reward.extract must be one of {', '.join(EXTRACT_RULES)}, got {extract!r}")
        self.executor = executor if executor is not None else LocalProcessExecutor(workers=workers)
        self.partial, self.extract = bool(partial), extract
        # At most ``workers`` executions at once, however many threads grade (GuardedReward's pool).
        bound = getattr(self.executor, "workers", workers)
        self._slots = threading.BoundedSemaphore(max(1, int(bound)))
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()  # outcomes so far, by kind (OUTCOMES)
        # compute_reward's outcomes (training's) not yet reported by metrics(): a trainer asking once
        # a step gets that step's own counts, the same in a run resumed from a checkpoint.
        self._unreported: Counter[str] = Counter()

    def job(self, completion: str, ground_truth: str) -> Job:
        problem = parse_problem(ground_truth)
        entry = problem.get("entry_point", "")
        wanted = {entry} if entry else called_names(problem["tests"])
        code = extract_code(completion, self.extract, wanted)
        program = build_program(code, problem.get("prefix", ""), entry)
        keep = tuple(problem.get("keep_names", ())) + ((entry,) if entry else ())
        return Job(program=program, tests=tuple(problem["tests"]), setup=problem.get("setup", ""), keep_names=keep)

    def grade(self, completion: str, ground_truth: str) -> Outcome:
        job = self.job(completion, ground_truth)
        with self._slots:
            outcome = self.executor.run(job)
        with self._lock:
            self.counts[outcome.status] += 1
            self._unreported[outcome.status] += 1
        return outcome

    def score(self, outcome: Outcome) -> float:
        if outcome.passed:
            return 1.0
        return outcome.fraction if self.partial and outcome.status in ("failed", "timeout", "killed", "error") else 0.0

    def compute_reward(self, completion: str, ground_truth: str) -> float:
        return self.score(self.grade(completion, ground_truth))

    def gradable(self, ground_truth: str) -> bool:
        try:
            parse_problem(ground_truth)
        except ValueError:
            return False
        return True

    def details(self, completions: Sequence[str], ground_truths: Sequence[str]) -> list[dict[str, Any]]:
        """Each completion graded, with what happened: the hook evaluation and grading use."""
        jobs = [self.job(c, g) for c, g in zip(completions, ground_truths)]
        outcomes = self.executor.run_many(jobs)
        with self._lock:
            self.counts.update(o.status for o in outcomes)
        return [
            {"reward": self.score(o), "passed": o.passed, "outcome": o.status, "tests_passed": o.tests_passed,
             "tests_total": o.tests_total, "reason": o.reason[:300], "exec_seconds": round(o.seconds, 4)}
            for o in outcomes
        ]

    def metrics(self) -> dict[str, float]:
        """``code/<outcome>`` for every kind (zeros included): the executions ``compute_reward`` ran
        since the last call (a training step's), not evaluation's (``details`` returns its own)."""
        with self._lock:
            counts, self._unreported = self._unreported, Counter()
        return {f"code/{kind}": float(counts.get(kind, 0)) for kind in OUTCOMES}

"""Mathematical equivalence of LaTeX answers, checked by math-verify (sympy underneath)."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache

# math-verify's own timeouts use signal.alarm, which only the main thread may set; elsewhere we
# switch them off and rely on GuardedReward's timeout instead.
_SIGNAL_TIMEOUT_S = 5


def last_boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}`` in ``text`` (braces balanced), or None."""
    start = text.rfind("\\boxed")
    while start != -1:
        open_brace = start + len("\\boxed")
        if text.startswith("{", open_brace):
            depth = 0
            for i in range(open_brace, len(text)):
                if text[i] == "{":
                    depth += 1
                elif text[i] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[open_brace + 1 : i]
        # "\boxed" without a brace or with unbalanced braces: try an earlier one.
        start = text.rfind("\\boxed", 0, start)
    return None


class _DropTimeoutDisabledWarning(logging.Filter):
    # Turning math-verify's signal timeouts off off the main thread is deliberate (see above),
    # so its "Timeout is disabled" warning would only alarm users.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


@lru_cache(maxsize=1)
def _math_verify():
    import math_verify  # deferred: sympy-heavy, loaded only when the reward first grades

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_DropTimeoutDisabledWarning())
    return math_verify


def _timeout() -> int | None:
    return _SIGNAL_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _as_boxed(latex: str) -> str:
    # Boxing a bare answer makes math-verify read all of it as one expression
    # ("\left( 3, \frac{\pi}{2} \right)" becomes a tuple rather than its first number).
    if "\\boxed" in latex:
        return latex
    if len(latex) > 1 and latex.startswith("$") and latex.endswith("$") and not latex.endswith("\\$"):
        latex = latex.strip("$")  # math delimiters ("$\frac12$"), unlike the dollar sign in "\$36"
    return f"\\boxed{{{latex}}}"


@lru_cache(maxsize=4096)
def _parse_gold(ground_truth: str, timeout: int | None) -> list:
    # A GRPO group grades many completions against the same ground truth; parse it once.
    return _math_verify().parse(_as_boxed(ground_truth.strip()), parsing_timeout=timeout)


class MathEquivalenceReward:
    """1.0 when the completion's last ``\\boxed{}`` (or, lacking one, the completion) equals the ground truth.

    ``\\frac{14}{3}`` matches ``14/3``, ``\\boxed{\\frac{1}{2}}`` matches ``0.5``.
    """

    name = "math_equivalence"

    def gradable(self, ground_truth: str) -> bool:
        # math-verify parses what it cannot read to an empty list, which no prediction ever equals.
        return bool(_parse_gold(ground_truth, _timeout()))

    def compute_reward(self, completion: str, ground_truth: str) -> float:
        mv = _math_verify()
        timeout = _timeout()
        boxed = last_boxed(completion)
        prediction = mv.parse(f"\\boxed{{{boxed}}}" if boxed is not None else completion, parsing_timeout=timeout)
        gold = _parse_gold(ground_truth, timeout)
        return 1.0 if mv.verify(gold, prediction, timeout_seconds=timeout) else 0.0

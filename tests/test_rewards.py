"""Built-in rewards on tricky inputs, user rewards from a file, and the guard around them."""

from __future__ import annotations

import threading
import time

import pytest
from hydra.utils import instantiate

from tinkerx.example import Example
from tinkerx.errors import UserError
from tinkerx.rewards.exact_match import ExactMatchReward
from tinkerx.rewards.guarded import GuardedReward, validate_reward
from tinkerx.rewards.math_equivalence import MathEquivalenceReward, last_boxed
from tinkerx.rewards.multiple_choice import MultipleChoiceReward, extract_choice
from tinkerx.rewards.numeric import NumericReward
from tinkerx.rewards.python_file import PythonFileReward


@pytest.mark.parametrize(
    "completion, truth, expected",
    [
        ("She makes 9 * 2 = $18 every day.\n#### 18", "18", 1.0),
        ("#### 1,000", "1000", 1.0),
        ("The total is $1,250.50 dollars.", "1250.5", 1.0),
        ("#### 18.", "#### 18", 1.0),
        ("#### 18.00", "18", 1.0),
        ("#### -3", "-3", 1.0),
        ("16 - 3 - 4 = 9 eggs", "9", 1.0),  # the "-4" of "3 - 4" must not read as negative
        ("16-3-4=9", "9", 1.0),
        ("#### 18 but the last number here is 7", "18", 1.0),  # #### wins over the last number
        ("####\nso the answer is 12", "12", 1.0),  # a bare #### falls back to the last number
        ("#### 17", "18", 0.0),
        ("I do not know.", "18", 0.0),
        ("#### 1,0", "10", 0.0),
    ],
)
def test_numeric(completion, truth, expected):
    assert NumericReward().compute_reward(completion, truth) == expected


def test_numeric_rejects_a_ground_truth_without_a_number():
    with pytest.raises(ValueError, match="no number"):
        NumericReward().compute_reward("#### 3", "Evelyn")


@pytest.mark.parametrize(
    "completion, truth, expected",
    [
        ("so x = \\boxed{\\frac{14}{3}}", "\\frac{14}{3}", 1.0),
        ("The answer is 14/3", "\\frac{14}{3}", 1.0),
        ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),
        ("\\boxed{0.5}", "\\frac{1}{2}", 1.0),
        ("\\boxed{\\dfrac{1}{2}}", "\\frac12", 1.0),
        ("first \\boxed{3}, no wait: \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", 1.0),
        ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", 1.0),
        ("so it costs \\boxed{\\$18.90}", "\\$18.90", 1.0),  # an escaped dollar is not a math delimiter
        ("\\boxed{\\frac{1}{2}}", "$\\frac12$", 1.0),
        ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", 1.0),
        ("\\boxed{\\frac{14}{3}} and then \\boxed{5}", "\\frac{14}{3}", 0.0),  # the last box counts
        ("\\boxed{\\frac{1}{3}}", "0.5", 0.0),
        ("no answer at all", "\\frac{14}{3}", 0.0),
    ],
)
def test_math_equivalence(completion, truth, expected):
    assert MathEquivalenceReward().compute_reward(completion, truth) == expected


def test_last_boxed_balances_braces():
    assert last_boxed("a \\boxed{1} b \\boxed{\\frac{a}{b^{2}}} c") == "\\frac{a}{b^{2}}"
    assert last_boxed("\\boxed{x} then \\boxed{unclosed") == "x"
    assert last_boxed("nothing boxed") is None


def test_math_equivalence_works_off_the_main_thread():
    # math-verify's own timeouts use signal.alarm, which raises ValueError off the main thread.
    results: list[float] = []
    worker = threading.Thread(
        target=lambda: results.append(MathEquivalenceReward().compute_reward("\\boxed{\\frac{14}{3}}", "14/3"))
    )
    worker.start()
    worker.join()
    assert results == [1.0]


def test_exact_match():
    assert ExactMatchReward().compute_reward("  Paris\n", "Paris") == 1.0
    assert ExactMatchReward().compute_reward("New   York", "New York") == 1.0
    assert ExactMatchReward().compute_reward("paris", "Paris") == 0.0
    assert ExactMatchReward(ignore_case=True).compute_reward("PARIS ", "paris") == 1.0
    assert ExactMatchReward(ignore_case=True).compute_reward("Paris.", "paris") == 0.0


@pytest.mark.parametrize(
    "text, letter",
    [
        ("Answer: (B)", "B"),
        ("the answer is b.", "B"),
        ("**C**", "C"),
        ("After weighing them all, the correct option is D because ...", "D"),
        ("Final answer: \\boxed{A}", "A"),
        ("(c)", "C"),
        ("B) 42", "B"),
        ("I think the answer is a bit unclear, but it must be C.", "C"),  # "a bit" is not a choice
        ("A cat would say C.", "C"),  # nor is the article "A"
        ("The answer is A.", "A"),
        ("none of these", None),
    ],
)
def test_extract_choice(text, letter):
    assert extract_choice(text) == letter


def test_multiple_choice_reward():
    reward = MultipleChoiceReward()
    assert reward.compute_reward("Let me think... **Answer: (B)**", "B") == 1.0
    assert reward.compute_reward("the answer is c.", "B") == 0.0
    assert reward.compute_reward("I cannot tell.", "B") == 0.0
    with pytest.raises(ValueError):
        reward.compute_reward("B", "forty-two")


@pytest.mark.parametrize(
    "option, cls",
    [
        ("numeric", NumericReward),
        ("math_equivalence", MathEquivalenceReward),
        ("exact_match", ExactMatchReward),
        ("multiple_choice", MultipleChoiceReward),
        ("python", PythonFileReward),
    ],
)
def test_reward_configs_instantiate(compose_config, tmp_path, option, cls):
    user_file = tmp_path / "my_reward.py"
    user_file.write_text("def compute_reward(completion, ground_truth):\n    return 1.0\n")
    overrides = [f"+reward={option}"] + ([f"reward.path={user_file}"] if option == "python" else [])
    reward = instantiate(compose_config(overrides, config_name=None).reward)
    assert isinstance(reward, cls) and reward.name


def test_python_file_reward(tmp_path):
    path = tmp_path / "my_reward.py"
    path.write_text("def compute_reward(completion, ground_truth):\n    return float(ground_truth in completion)\n")
    reward = PythonFileReward(str(path))
    assert reward.name == "python:my_reward.py"
    assert reward.compute_reward("it is 42", "42") == 1.0
    assert reward.compute_reward("it is 41", "42") == 0.0


@pytest.mark.parametrize(
    "source, message",
    [
        (None, "reward file not found"),
        ("def grade(c, g):\n    return 1.0\n", "no function compute_reward"),
        ("def compute_reward(c, g)\n    return 1.0\n", "importing the reward failed: SyntaxError"),
    ],
)
def test_python_file_reward_errors_are_one_line(tmp_path, source, message):
    path = tmp_path / "bad.py"
    if source is not None:
        path.write_text(source)
    with pytest.raises(UserError, match=message) as info:
        PythonFileReward(str(path))
    assert "\n" not in str(info.value)


class _Raises:
    name = "raises"

    def compute_reward(self, completion, ground_truth):
        raise RuntimeError("grader crashed\non two lines")


class _Sleeps:
    name = "sleeps"

    def compute_reward(self, completion, ground_truth):
        time.sleep(2.0)
        return 1.0


class _ReturnsText:
    name = "returns_text"

    def compute_reward(self, completion, ground_truth):
        return "1.0"


def test_guarded_reward_counts_an_exception_as_zero():
    guarded = GuardedReward(_Raises())
    assert guarded.compute_reward("x", "y") == 0.0
    assert (guarded.errors, guarded.timeouts) == (1, 0)
    assert guarded.last_error == "RuntimeError: grader crashed on two lines"


def test_guarded_reward_counts_a_timeout_as_zero():
    guarded = GuardedReward(_Sleeps(), timeout_s=0.1)
    start = time.perf_counter()
    assert guarded.compute_reward("x", "y") == 0.0
    assert time.perf_counter() - start < 1.0
    assert (guarded.errors, guarded.timeouts) == (0, 1)
    assert "timed out" in guarded.last_error


def test_guarded_reward_counts_a_non_number_as_an_error():
    guarded = GuardedReward(_ReturnsText())
    assert guarded.compute_reward("x", "y") == 0.0
    assert guarded.errors == 1 and "expected a float" in guarded.last_error


def test_score_batch_is_ordered_concurrent_and_counts_thread_safely():
    guarded = GuardedReward(NumericReward())
    completions = [f"#### {i}" for i in range(40)]
    truths = [str(i if i % 4 else i + 1) for i in range(40)]
    assert guarded.score_batch(completions, truths) == [0.0 if i % 4 == 0 else 1.0 for i in range(40)]

    failing = GuardedReward(_Raises(), max_workers=8)
    assert failing.score_batch(["x"] * 64, ["y"] * 64) == [0.0] * 64
    assert failing.errors == 64

    slow = GuardedReward(_Sleeps(), timeout_s=0.2, max_workers=8)
    start = time.perf_counter()
    assert slow.score_batch(["x"] * 8, ["y"] * 8) == [0.0] * 8
    assert time.perf_counter() - start < 1.5  # concurrent: one timeout's worth, not eight
    assert slow.timeouts == 8


def test_guarded_math_equivalence_in_worker_threads():
    guarded = GuardedReward(MathEquivalenceReward())
    scores = guarded.score_batch(["\\boxed{\\frac{14}{3}}", "\\boxed{0.5}", "\\boxed{7}"], ["14/3", "\\frac{1}{2}", "8"])
    assert scores == [1.0, 1.0, 0.0]
    assert guarded.errors == 0, guarded.last_error


_EXAMPLES = [
    Example(question="1+1?", answer="2", solution="1+1=2\n#### 2"),
    Example(question="2+2?", answer="4", solution="2+2=4\n#### 4"),
]


def test_validate_reward_passes_a_working_reward():
    assert validate_reward(NumericReward(), _EXAMPLES) == [1.0, 1.0]
    assert validate_reward(NumericReward(), _EXAMPLES, completions=["#### 2", "#### 5"]) == [1.0, 0.0]


def test_validate_reward_warns_when_no_reference_solution_scores(caplog):
    math_examples = [Example(question="?", answer="\\frac{1}{2}", solution="so \\boxed{\\frac{1}{2}}")]
    assert validate_reward(ExactMatchReward(), math_examples) == [0.0]
    assert "scored 0 on all 1 reference solutions" in caplog.text


@pytest.mark.parametrize(
    "reward, message",
    [
        (_Raises(), "reward 'raises' failed on all 2 validation examples: RuntimeError: grader crashed on two lines"),
        (_ReturnsText(), "reward 'returns_text' is broken: compute_reward returned str"),
        (NumericReward(), "reward 'numeric' failed on all 2 validation examples: ValueError: no number"),
    ],
)
def test_validate_reward_stops_a_broken_reward(reward, message):
    examples = _EXAMPLES
    if isinstance(reward, NumericReward):  # the wrong reward for the data: answers are names
        examples = [Example(question="Who?", answer="Evelyn"), Example(question="Who?", answer="Bob")]
    with pytest.raises(UserError) as info:
        validate_reward(reward, examples)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_validate_reward_stops_a_hanging_reward():
    with pytest.raises(UserError, match="timed out after 0.1s"):
        validate_reward(_Sleeps(), _EXAMPLES, timeout_s=0.1)


def test_rewards_say_which_ground_truths_they_can_grade():
    from tinkerx.rewards.exact_match import ExactMatchReward
    from tinkerx.rewards.gradable import can_grade
    from tinkerx.rewards.guarded import GuardedReward
    from tinkerx.rewards.multiple_choice import MultipleChoiceReward
    from tinkerx.rewards.numeric import NumericReward

    assert can_grade(NumericReward(), "1,000") and not can_grade(NumericReward(), "p - q")
    assert not can_grade(GuardedReward(NumericReward()), "p - q")  # seen through the guard
    assert can_grade(MultipleChoiceReward(), "B") and not can_grade(MultipleChoiceReward(), "Paris")
    assert can_grade(ExactMatchReward(), "anything")  # a reward that does not say grades everything

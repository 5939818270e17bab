"""dataset.train_sign_slips: the code-RL demo's imperfect demonstrator writes '+' for a fraction of
its subtraction tasks' solutions; asserts, prompts and held-out splits stay right."""

from __future__ import annotations

import pytest

from tinkerx.data.code_tasks import PyFunctions
from tinkerx.errors import ConfigError


def test_slips_write_plus_for_that_fraction_of_subtraction_solutions_only() -> None:
    clean, slipped = PyFunctions(max_number=999), PyFunctions(max_number=999, train_sign_slips=0.7)
    assert [(e.id, e.answer, e.fields["spec"]) for e in clean.train] == [(e.id, e.answer, e.fields["spec"]) for e in slipped.train]
    changed = [(c, s) for c, s in zip(clean.train, slipped.train) if c.solution != s.solution]
    subtractions = [e for e in clean.train if " - " in e.solution]
    assert all(" - " in c.solution and s.solution == c.solution.replace(" - ", " + ") for c, s in changed)
    assert 0.65 < len(changed) / len(subtractions) < 0.75
    assert [e.solution for e in clean.test + clean.validation] == [e.solution for e in slipped.test + slipped.validation]


def test_slips_are_seeded() -> None:
    first = [e.solution for e in PyFunctions(train_sign_slips=0.5, seed=4).train]
    assert first == [e.solution for e in PyFunctions(train_sign_slips=0.5, seed=4).train]
    assert first != [e.solution for e in PyFunctions(train_sign_slips=0.5, seed=5).train]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"train_sign_slips": -0.1}, r"fraction in \[0, 1\]"),
    ({"train_sign_slips": 0.5, "operations": ["+", "*"]}, "applies to subtractions"),
])  # fmt: skip
def test_bad_slip_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        PyFunctions(**kwargs)

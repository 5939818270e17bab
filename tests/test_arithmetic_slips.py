"""dataset.train_carry_slips: an imperfect demonstrator that drops the carry, on the training split only."""

from __future__ import annotations

import pytest

from tinkerx.data.arithmetic import Arithmetic
from tinkerx.errors import ConfigError


def _carries(ex) -> bool:
    a, _, b = ex.id.partition("+")
    return int(a) % 10 + int(b) % 10 >= 10


def _right(ex) -> bool:
    a, _, b = ex.id.partition("+")
    return ex.answer == str(int(a) + int(b))


def test_slips_drop_the_carry_of_that_fraction_of_carrying_training_additions() -> None:
    clean, slipped = Arithmetic(train_size=3000), Arithmetic(train_size=3000, train_carry_slips=0.7)
    assert [e.id for e in clean.train] == [e.id for e in slipped.train]  # the same problems
    wrong = [e for e in slipped.train if not _right(e)]
    carrying = [e for e in slipped.train if _carries(e)]
    assert all(_carries(e) for e in wrong)  # only carrying additions slip
    assert all(int(e.answer) == int(e.id.split("+")[0]) + int(e.id.split("+")[1]) - 10 for e in wrong)
    assert 0.65 < len(wrong) / len(carrying) < 0.75
    assert all(_right(e) for e in slipped.validation + slipped.test)  # held-out answers stay right
    assert all(_right(e) for e in clean.train)


def test_slips_are_seeded() -> None:
    first = [e.answer for e in Arithmetic(train_size=500, train_carry_slips=0.5, seed=4).train]
    assert first == [e.answer for e in Arithmetic(train_size=500, train_carry_slips=0.5, seed=4).train]
    assert first != [e.answer for e in Arithmetic(train_size=500, train_carry_slips=0.5, seed=5).train]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"train_carry_slips": 1.5}, r"fraction in \[0, 1\]"),
    ({"train_carry_slips": 0.5, "operations": ["-"]}, "applies to additions"),
])
def test_bad_slip_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        Arithmetic(train_size=100, **kwargs)

"""What pyproject's ``filterwarnings`` turns into errors: deprecations attributed to tinkerx modules.

Each case issues a real warning from code whose module name (``__name__``, what Python attributes
a warning to) is chosen, so the filters in pyproject.toml are what decides: remove or loosen them
and the cases that expect an error fail.
"""

from __future__ import annotations

import warnings

import pytest


def _function_in(module: str, source: str):
    """``emit`` defined in a module named ``module``: its warnings are attributed to that module."""
    namespace = {"__name__": module, "warnings": warnings}
    exec(compile(source, f"<{module}>", "exec"), namespace)
    return namespace["emit"]


def _warn_in(module: str, category: type[Warning]) -> None:
    _function_in(module, "def emit(category):\n    warnings.warn('renamed: use the new name', category)\n")(category)


@pytest.mark.parametrize("module", ["tinkerx", "tinkerx.backends.local.sampler"])
@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning, FutureWarning])
def test_a_deprecation_raised_in_tinkerx_fails_the_test(module, category):
    with pytest.raises(category, match="renamed"):
        _warn_in(module, category)


def test_a_deprecated_library_call_made_from_tinkerx_fails_the_test():
    # Libraries warn with stacklevel=2 so the warning names their caller: here a tinkerx module.
    library = _function_in("somelib.api", "def emit():\n    warnings.warn('old_arg is deprecated', FutureWarning, stacklevel=2)\n")
    caller = _function_in("tinkerx.sampling", "def emit(library):\n    library()\n")
    with pytest.raises(FutureWarning, match="old_arg"):
        caller(library)


@pytest.mark.parametrize("module", ["somelib.api", "tinkerxtra", "tests.test_something"])
def test_deprecations_attributed_elsewhere_are_reported_not_raised(module):
    with pytest.warns(DeprecationWarning, match="renamed"):
        _warn_in(module, DeprecationWarning)


def test_other_warnings_from_tinkerx_are_reported_not_raised():
    with pytest.warns(UserWarning, match="renamed"):
        _warn_in("tinkerx.runs", UserWarning)

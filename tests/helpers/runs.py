"""A run in this process (``tinkerx.app.run`` on a composed config) and what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.compose import compose


def run_in_process(overrides: list[str], run_dir: Path, resume: bool = False) -> dict:
    """Composes ``overrides`` as the CLI would and runs it into ``run_dir``; returns the summary."""
    from tinkerx.app import run

    return run(compose(overrides), run_dir, resume=resume)


def metrics_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def metrics_without_time(run_dir: Path) -> list[dict]:
    """The metric lines without wall-clock keys (``time/...``): what two equal runs share."""
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in metrics_rows(run_dir)]


def metrics_without_time_or_usage(run_dir: Path) -> list[dict]:
    """The metric lines without timing and token usage (``usage/...``): what a run that reuses cached
    work (teacher samples) shares with the run that paid for it, and what a run recorded before
    tokens were metered shares with its reproduction."""
    return [{k: v for k, v in row.items() if not k.startswith("usage/")} for row in metrics_without_time(run_dir)]


# What sampling and scoring decide: equal on any CPU when the same tokens were sampled. Training's
# floats (losses, KL, gradient norms) are sums whose rounding depends on the CPU's kernels (AVX2 vs
# AVX512) and the thread count, so across machines they agree only to about 1e-5.
SAMPLED_PREFIXES = ("step", "reward/", "groups/", "sample/", "pool/", "eval/")


def assert_same_run_up_to_float_rounding(got: list[dict], expected: list[dict], rel: float = 1e-4) -> None:
    """The same lines and keys; counts, samples and rewards equal; training floats within ``rel``
    (values below 1e-6, rounding noise themselves, within 1e-6 absolute)."""
    import pytest

    assert len(got) == len(expected)
    for line, (g, e) in enumerate(zip(got, expected), start=1):
        assert set(g) == set(e), (line, set(g) ^ set(e))
        for key, value in e.items():
            if isinstance(value, float) and not key.startswith(SAMPLED_PREFIXES):
                assert g[key] == pytest.approx(value, rel=rel, abs=1e-6), (line, key)
            else:
                assert g[key] == value, (line, key)

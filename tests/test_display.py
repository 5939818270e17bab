"""The terminal view stays readable on an 80-column terminal."""

from __future__ import annotations

import io

from rich.console import Console

from tinkerx.runs.display import StepProgress

GRPO_METRICS = {
    "reward/mean": 0.53125, "reward/accuracy": 0.5, "groups/all_0": 0.125, "groups/all_1": 0.25,
    "sample/truncation_rate": 0.0625, "reward/errors": 0, "eval/accuracy": 0.61,
}


def test_progress_line_fits_80_columns_and_shows_every_figure():
    console = Console(width=80, record=True, file=io.StringIO(), force_terminal=True)
    bar = StepProgress(50, "grpo (long description)", show=list(GRPO_METRICS), console=console)
    for _ in range(3):
        bar.advance(GRPO_METRICS)
    console.print(bar.renderable())
    lines = console.export_text().splitlines()
    assert lines and all(len(line) <= 80 for line in lines), lines
    text = "\n".join(lines)
    assert "3/50" in text
    for figure in ("reward/mean=0.5312", "groups/all_0=0.125", "sample/truncation_rate=0.0625", "eval/accuracy=0.61", "reward/errors=0"):
        assert figure in text, (figure, text)

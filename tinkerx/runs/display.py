"""The terminal view of a run: a rich progress bar while training, tables at the end."""

from __future__ import annotations

from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

console = Console(stderr=True)


class _MetricsBelowProgress(Progress):
    """The bar on one line and the metrics wrapped beneath it.

    As one more column, the metrics squeeze the bar and get cut off below ~150 columns; as their
    own text, they wrap at the terminal width and every figure stays readable at 80.
    """

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            if task.fields.get("metrics"):
                yield Text("  " + task.fields["metrics"], overflow="fold")


class StepProgress:
    """``with StepProgress(total, "sft") as bar: bar.advance({"loss": 0.3})``; shows a few key metrics."""

    def __init__(self, total: int, description: str, show: Sequence[str] = (), console: Console | None = None) -> None:
        self.show = list(show)
        self._progress = _MetricsBelowProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or globals()["console"],
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total, metrics="")

    def __enter__(self) -> "StepProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def advance_to(self, completed: int) -> None:
        """Start the bar part-way (a resumed run)."""
        self._progress.update(self._task, completed=completed)

    def advance(self, metrics: dict[str, Any]) -> None:
        shown = [f"{k}={_fmt(metrics[k])}" for k in self.show if metrics.get(k) is not None]
        if metrics.get("usage/total_tokens") is not None:
            shown.append(spent(metrics.get("usage/total_tokens"), metrics.get("usage/total_cost_usd")))
        self._progress.update(self._task, advance=1, metrics="  ".join(shown))

    def renderable(self):
        return self._progress.get_renderable()


def spent(tokens: int, cost_usd: float | None) -> str:
    """What the run has spent so far, in a few characters: ``tokens=12.3k cost=$0.0042``; a cost the
    prices cannot give reads ``unknown``, never $0."""
    size = f"{tokens / 1e6:.2f}M" if tokens >= 1e6 else f"{tokens / 1e3:.1f}k" if tokens >= 1e3 else str(tokens)
    return f"tokens={size} cost=" + (f"${cost_usd:.4f}" if cost_usd is not None else "unknown")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def comparison_table(title: str, baseline: dict[str, Any], final: dict[str, Any], keys: Sequence[str] | None = None) -> Table:
    """Baseline vs final, one row per metric, with the change."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("baseline", justify="right")
    table.add_column("final", justify="right")
    table.add_column("change", justify="right")
    for key in keys or sorted(set(baseline) | set(final)):
        b, f = baseline.get(key), final.get(key)
        if not isinstance(b, (int, float)) and not isinstance(f, (int, float)):
            continue
        change = f"{f - b:+.4g}" if isinstance(b, (int, float)) and isinstance(f, (int, float)) else ""
        table.add_row(key, _fmt(b) if b is not None else "-", _fmt(f) if f is not None else "-", change)
    return table


def key_value_table(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("key")
    table.add_column("value", justify="right")
    for key, value in values.items():
        if isinstance(value, (int, float, str)) or value is None:
            table.add_row(key, _fmt(value))
    return table


def show(*tables: Table) -> None:
    for table in tables:
        console.print(table)

"""What every benchmark shares: interleaved timing, medians, model loading and the result table.

Each benchmark times tinkerx and a plain baseline on the same model in the same process, one right
after the other, alternating which goes first, and reports the median of the per-repeat ratios:
machines here are shared and noisy, and a ratio of neighbours cancels most of the drift.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

# The project's shared data sets (../shared/data beside the checkout; README "Tests"), read by path.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Wide enough for the tables when the output goes to a file or a pipe (rich assumes 80 there).
console = Console() if sys.stdout.isatty() else Console(width=150)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleave(ours: Callable[[], Any], plain: Callable[[], Any], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each, run back to back ``repeats`` times; the order swaps every repeat."""
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    for i in range(repeats):
        order = [("ours", ours), ("plain", plain)] if i % 2 == 0 else [("plain", plain), ("ours", ours)]
        for name, fn in order:
            times[name].append(timed(fn)[0])
    return times


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(numerators, denominators))


def verdict(ratio: float, goal: float, higher_is_better: bool) -> str:
    ok = ratio >= goal if higher_is_better else ratio <= goal
    return "[green]met[/green]" if ok else "[red]missed[/red]"


def machine_line(with_torch: bool = True) -> str:
    import os

    line = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    if hasattr(os, "getloadavg"):  # other jobs on a shared machine make every absolute figure slower
        line += ", load average {:.1f}".format(os.getloadavg()[0])
    if with_torch:
        import torch

        line += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    return line


def table(title: str, columns: list[str], text_columns: int = 2) -> Table:
    """Columns after the first ``text_columns`` hold figures and are right-aligned."""
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i < text_columns else "right")
    return t


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--smollm2", action="store_true", help="also benchmark SmolLM2-135M (needs the smollm2 extra)")
    return parser


def open_service(loader: Any, device: str = "cpu", seed: int = 0):
    """A local service client over one model, its checkpoints in a throwaway folder, with the
    settings of ``conf/backend/local.yaml`` (what ``backend=local`` runs get)."""
    from omegaconf import OmegaConf

    from tinkerx.backends.local import LocalBackend
    from tinkerx.paths import CONFIG_DIR

    defaults = OmegaConf.load(CONFIG_DIR / "backend" / "local.yaml")
    backend = LocalBackend(device=device, max_batch_rows=defaults.max_batch_rows)
    return backend, backend.open([loader], Path(tempfile.mkdtemp(prefix="tinkerx-bench-")), seed=seed)


def model_loaders(smollm2: bool) -> list[tuple[str, Any]]:
    """(label, loader) for tiny and, when asked and installed, SmolLM2-135M."""
    from tinkerx.models.tiny import TinyModel

    loaders: list[tuple[str, Any]] = [("tiny", TinyModel())]
    if smollm2:
        from tinkerx.models.gguf import GGUFModel

        loaders.append(("smollm2-135m", GGUFModel()))
    return loaders

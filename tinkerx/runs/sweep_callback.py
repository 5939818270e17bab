"""The Hydra callback (``hydra.callbacks.sweep``) around every run and sweep.

Before: a one-line warning for overridden or swept keys the method ignores. After a sweep:
``sweep_summary.csv`` and ``sweep_summary.md`` in the sweep folder, the table on the terminal, and a
non-zero exit when any trial failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from tinkerx.cli_errors import EXIT_FAILED_TRIALS, report_user_error
from tinkerx.runs.sweep_checks import override_keys, warn_ignored_keys


class SweepCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _warn_ignored(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _warn_ignored(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # deferred (both): rich's console and tables load only after a sweep, not on every start-up
        from tinkerx.runs.display import console  # deferred: see above
        from tinkerx.runs.sweep_summary import summary_table, sweep_rows, write_summary  # deferred: see above

        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        rows = sweep_rows(sweep_dir)
        csv_path, md_path = write_summary(sweep_dir, rows)
        console.print(summary_table(rows, f"sweep {sweep_dir}"))
        console.print(f"sweep summary: {csv_path} and {md_path.name}")
        failed = [r for r in rows if r["status"] != "completed"]
        if failed:
            report_user_error(f"{len(failed)} of {len(rows)} trials did not complete (reasons in {md_path})",
                              exit_code=EXIT_FAILED_TRIALS)


def _warn_ignored(config: DictConfig) -> None:
    ignored = config.get("method_ignores")
    if not ignored:
        return
    keys = override_keys(config.hydra.overrides.task)
    if "method" in keys:
        return  # a sweep over methods: what one of them ignores, another reads
    # Sweepers that search (Optuna) take their space from hydra.sweeper.params instead.
    params = config.hydra.sweeper.get("params") or {}
    keys += [str(k) for k in params]
    warn_ignored_keys(config.hydra.runtime.choices.get("method", "?"), keys, ignored)

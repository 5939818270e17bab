"""Re-run a finished run from its folder: ``python -m tinkerx.reproduce RUN_DIR [overrides...]``.

The config is re-composed from the run's group choices (method, model, dataset, ...) and its
command-line overrides, read from ``.hydra/hydra.yaml``, rather than from the saved values: that
keeps node types intact when a group override is added (``backend=tinker`` replaces a whole node,
not a string). Hydra settings the user overrode are restored; the output goes to a new sibling
folder (``RUN-reproduced-<time>-<tag>``) so the original is never touched. Data files are read from
the absolute paths the run recorded, after checking their sha256 (``data_files.json``), so this
works from any directory and refuses data that changed. Afterwards the new ``metrics.jsonl`` is
compared with the original's, ignoring wall-clock keys (``time/...``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from tinkerx import cli
from tinkerx.cli_errors import report_user_error
from tinkerx.errors import UserError
from tinkerx.judges.cache import carry_judgments
from tinkerx.mcp.replay import main as replay_session
from tinkerx.runs.compare import compare_metrics, float_agreement
from tinkerx.runs.config_drift import drifted_overrides
from tinkerx.runs.data_files import recorded_data_overrides
from tinkerx.runs.environment import cpu_difference, match_thread_count
from tinkerx.runs.legacy_experiments import modernize, override_key

# Hydra settings that describe where and how the original ran, not what it ran.
_PER_RUN_HYDRA_KEYS = ("hydra.run.dir", "hydra.sweep.", "hydra.mode", "hydra.job.num", "hydra.job.id", "hydra.output_subdir")


def reproduction_args(run_dir: Path, extra: list[str], new_dir: Path) -> list[str]:
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if not hydra_file.is_file():
        raise UserError(f"{run_dir} is not a tinkerx run folder (no .hydra/hydra.yaml)")
    try:
        hydra = OmegaConf.load(hydra_file).hydra
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same news for the user
        raise UserError(f"cannot reproduce {run_dir}: {hydra_file} is unreadable: {type(e).__name__}: {' '.join(str(e).split())}") from None
    task = [str(o) for o in hydra.overrides.task]
    user_hydra = [str(o) for o in hydra.overrides.hydra if not str(o).startswith(_PER_RUN_HYDRA_KEYS)]
    # Relative data paths in the original overrides are replaced by the recorded absolute ones.
    data = recorded_data_overrides(run_dir, {override_key(o) for o in extra})
    data_keys = {override_key(o) for o in data}
    original_cwd = hydra.runtime.get("cwd")  # absent only in hand-made folders
    task = [_absolute_path(o, Path(original_cwd)) if original_cwd else o for o in task if override_key(o) not in data_keys]

    # Folders written before experiments were renamed (and experiment/tuned removed) compose as today.
    runtime_choices, task = modernize(hydra.runtime.choices, task, run_dir)
    overridden = {override_key(o) for o in task + extra}
    choices = [
        f"{group}={choice}"
        for group, choice in runtime_choices.items()
        if not group.startswith("hydra/") and choice is not None and group not in overridden
    ]
    output_subdir = hydra.output_subdir
    return choices + task + data + user_hydra + extra + [f"hydra.run.dir={new_dir}", f"hydra.output_subdir={output_subdir}"]


def restored_values(run_dir: Path, args: list[str], extra: list[str]) -> list[str]:
    """Overrides that set back what the run's config files gave it and give differently today."""
    drift, lost = drifted_overrides(args, run_dir, extra)
    if drift:
        print("the experiment's files changed since this run; setting back what it ran with: " + " ".join(drift))
    if lost:
        print("changed since this run and not set back (removed, or not a single value): " + ", ".join(lost))
    return drift


def _absolute_path(override: str, original_cwd: Path) -> str:
    """``key=relative/path`` (a teacher checkpoint, ``method.init_from``, ...) as the absolute path it
    named in the original run's working directory, so the reproduction runs from any directory.
    Group choices (``model=tiny``, no dot in the key) and values that name nothing there are kept."""
    key, sep, value = override.partition("=")
    if not sep or "." not in key or not value or value.startswith(("/", "~", "$")) or "://" in value:
        return override
    candidate = original_cwd / value
    return f"{key}={candidate.resolve()}" if candidate.exists() else override


def sibling_dir(run_dir: Path) -> Path:
    """A new folder beside the original; the random tag keeps two reproductions in one second apart."""
    return run_dir.with_name(f"{run_dir.name}-reproduced-{time.strftime('%Y%m%d-%H%M%S')}-{cli.unique_suffix()}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0])
        sys.exit(0 if argv else 2)
    run_dir = Path(argv[0]).resolve()
    extra = argv[1:]
    given = next((o.split("=", 1)[1] for o in extra if o.startswith("hydra.run.dir=")), None)
    new_dir = Path(given).resolve() if given else sibling_dir(run_dir)
    extra = [o for o in extra if not o.startswith("hydra.run.dir=")]
    if (run_dir / "tool_calls.jsonl").is_file():  # an agent's MCP session: replay its tool calls
        return replay_session(run_dir, new_dir)
    try:
        args = reproduction_args(run_dir, extra, new_dir)
    except UserError as e:
        report_user_error(e)
    args += restored_values(run_dir, args, extra)

    if new_dir.exists() and any(new_dir.iterdir()):
        report_user_error(f"{new_dir} already holds files: reproduce into a new folder (hydra.run.dir=...)")
    match_thread_count(run_dir)
    other_cpu = cpu_difference(run_dir)
    if other_cpu:
        print(f"{other_cpu}: float sums may round differently, so expect the experiment's band, not line for line")
    carry_judgments(run_dir, new_dir)  # an LLM judge's verdicts are not paid for twice
    print("reproducing with: python -m tinkerx " + " ".join(args))
    cli.main(args, composition_prefix=f"cannot reproduce {run_dir}: its config no longer composes: ")
    if not extra:
        print(f"{new_dir}: {_verdict(run_dir, new_dir, other_cpu)}", file=sys.stderr)


def _verdict(run_dir: Path, new_dir: Path, other_cpu: str | None) -> str:
    difference = compare_metrics(run_dir, new_dir)
    if difference is None:
        return "metrics.jsonl matches the original line for line"
    verdict = f"metrics differ from the original: {difference}"
    agreement = float_agreement(run_dir, new_dir)
    if agreement is not None:
        verdict += f"; the same lines and counts, floats within {agreement:.1e} relative"
    return verdict + (f"; {other_cpu}" if other_cpu else "")


if __name__ == "__main__":
    main()

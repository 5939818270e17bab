"""``python -m tinkerx.envs.demonstrations env=tool_use|guess_number [KEY=VALUE ...] --out FILE.jsonl``

Writes the demonstrations of an environment's training tasks -- the episode its demonstration player
plays, as chat messages -- one ``{"messages": [...]}`` record a line, for SFT with ``dataset=chat``
(the warm start of multi-turn RL for a model that does not yet follow the environment's format:
SmolLM2-135M-Instruct never calls a tool on its own, the tiny model starts from random weights;
``env=guess_number`` mixes two openings, ``env.demo_binary_share``). The environment is built from the run's
config (the same overrides, e.g. ``env.problems=word env.tools=[calculator] seed=0``), so the
demonstrations open exactly as its episodes do and cover its training split only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinkerx.errors import ConfigError, UserError
from tinkerx.runs.compose import compose_config


def write_demonstrations(spec: object, out: Path) -> int:
    """One record per training task of ``spec``; the number written."""
    demonstrate = getattr(spec, "demonstration", None)
    if demonstrate is None:
        raise ConfigError(f"{type(spec).__name__} has no demonstrations; environments with them: guess_number, tool_use")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with tmp.open("w") as f:
            for task in spec.train:
                f.write(json.dumps({"id": task.id, "messages": demonstrate(task)}) + "\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)  # a killed write leaves no half file under the name SFT reads
    return len(spec.train)


def main(argv: list[str] | None = None) -> int:
    from tinkerx.cli_errors import report_user_error

    parser = argparse.ArgumentParser(prog="python -m tinkerx.envs.demonstrations", description=__doc__.split("\n\n")[1])
    parser.add_argument("overrides", nargs="*", help="config overrides: env=tool_use env.problems=word 'env.tools=[calculator]'")
    parser.add_argument("--out", required=True, type=Path, help="the JSON-lines file to write")
    args = parser.parse_args(argv)
    try:
        cfg = compose_config(args.overrides)
        if cfg.get("env") is None:
            raise ConfigError("name an environment: env=tool_use")
        from tinkerx.build import instantiate

        written = write_demonstrations(instantiate(cfg.env, "env"), args.out)
    except UserError as e:
        report_user_error(e)
    print(f"wrote {written} demonstrations: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

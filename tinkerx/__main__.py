"""``python -m tinkerx method=... model=... dataset=... backend=...``

User mistakes (an unknown group option or key, a bad value, a missing file) end with one line on
stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from tinkerx.cli_errors import install_compact_errors, report_user_error
from tinkerx.errors import UserError


CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")


# An absolute config path works however the entry is reached (python -m, console script, reproduce).
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _entry(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from tinkerx.app import run

    from omegaconf.errors import MissingMandatoryValue

    try:
        summary = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except UserError as e:
        report_user_error(e)
    except MissingMandatoryValue as e:
        report_user_error(UserError(f"{e.full_key} is required and has no default: set it, e.g. {e.full_key}=..."))
    final = summary.get("final") if isinstance(summary, dict) else None
    # Returned to Hydra so sweepers that optimise (e.g. Optuna) can read the objective.
    return final.get("accuracy") if isinstance(final, dict) else None


def main() -> None:
    install_compact_errors()
    _entry()


if __name__ == "__main__":
    sys.exit(main())

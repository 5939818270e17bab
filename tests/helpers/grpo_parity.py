"""GRPO configurations on model=tiny whose metrics.jsonl before the episode runner was recorded in
tests/fixtures/grpo_parity/ (from the code of that time); tests/test_envs_parity.py runs them through
today's code and compares. Re-record only on purpose: ``python -m tests.helpers.grpo_parity``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.helpers.data import EASY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grpo_parity"
COIN = "def compute_reward(completion, ground_truth):\n    return float(completion.encode()[:1] < b'\\x80')\n"
# One torch thread: CPU sums depend on the thread count, the fixture must not.
COMMON = ["method=grpo", "training.max_steps=3", "training.batch_size=4", "method.group_size=4", "training.eval_every=2",
          "evaluator.max_examples=6", "method.samples_per_step=1", "sampling.max_tokens=2", "optim.lr=1e-3",
          "backend.num_threads=1", "reward=python", *EASY[:-1]]  # fmt: skip
CASES = {
    "base": [],
    "dapo": ["method.variant=dapo"],
    "grpo_kl": ["method.variant=grpo"],
    "overlap": ["method.overlap_rollouts=true"],
}


def overrides(case: str, folder: Path) -> list[str]:
    coin = folder / "ascii_first.py"  # a random tiny model earns it about half the time: signal every step
    coin.write_text(COIN)
    return [*COMMON, f"reward.path={coin}", *CASES[case]]


def stripped(rows: list[dict]) -> list[dict]:
    # Timing varies; token usage (usage/) was recorded after these fixtures and is not a training metric.
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "usage/"))} for r in rows]


def record(folder: Path) -> None:
    from tests.helpers.runs import metrics_rows, run_in_process

    FIXTURES.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        run_in_process(overrides(case, folder), folder / case)
        rows = stripped(metrics_rows(folder / case))
        (FIXTURES / f"{case}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(case, len(rows), "rows")


if __name__ == "__main__":
    import tempfile

    record(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))

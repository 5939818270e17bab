"""Small data sets and rewards the end-to-end tests train on."""

from __future__ import annotations

from pathlib import Path

# One-digit addition: 100 problems, small enough that a few seconds of SFT gets the tiny model
# partway, which leaves GRPO both signal and room to improve.
EASY = ["dataset.digits=1", "dataset.train_size=70", "dataset.validation_size=0", "dataset.test_size=30", "sampling.max_tokens=4"]
ONE_DIGIT = ["dataset.digits=1", "dataset.train_size=70", "dataset.validation_size=0", "dataset.test_size=30", "sampling.max_tokens=3",
             "evaluator.max_examples=30"]  # fmt: skip


def write_starts_with_digit(folder: Path) -> Path:
    """A python reward for an easy verifiable task: the reply starts with a digit."""
    path = folder / "starts_with_digit.py"
    path.write_text("def compute_reward(completion, ground_truth):\n    return float(completion[:1].isdigit())\n")
    return path

"""A benchmark suite: named data sets, each graded by its own reward on its test split.

Data sets come as factories (``_partial_: true``) so a suite can point them at local copies
(``data_dir``, for machines without the hub) and so only the suite in use is ever loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tinkerx.errors import DataError
from tinkerx.rewards.guarded import GuardedReward, validate_reward


@dataclass
class Benchmark:
    dataset: Callable[..., Any]            # builds the data set; local_files become its arguments
    reward: Any
    max_examples: int | None = None        # None: the whole test split
    local_files: dict[str, str] = field(default_factory=dict)  # argument -> file under data_dir


@dataclass
class LoadedBenchmark:
    dataset: Any
    reward: GuardedReward
    max_examples: int | None
    max_tokens: int                        # the generation budget its answers need
    whole_file: str | None = None          # evaluated in full: a file with no test split of its own


class Suite:
    """``benchmarks`` empty means the run's own data set and reward (``suite=dataset``)."""

    def __init__(self, name: str, benchmarks: dict[str, Benchmark], data_dir: str | None = None, reward_timeout_s: float = 5.0,
                 context_length: int | None = None) -> None:  # fmt: skip
        self.name, self.benchmarks, self.data_dir, self.reward_timeout_s = name, dict(benchmarks), data_dir, reward_timeout_s
        # The evaluated model's context (model.context_length): each benchmark's prompts plus its budget are
        # checked against it (tinkerx.data.lengths.check_benchmarks); None: the model records none.
        self.context_length = context_length

    def load(self) -> dict[str, LoadedBenchmark]:
        """Reads every data set and checks its reward on a few of its own reference answers."""
        loaded = {}
        for name, bench in self.benchmarks.items():
            files = {arg: str(Path(self.data_dir).expanduser() / f) for arg, f in bench.local_files.items()} if self.data_dir else {}
            try:
                dataset = bench.dataset(**files)
            except DataError as e:
                if self.data_dir or not bench.local_files:
                    raise
                wanted = ", ".join(bench.local_files.values())
                raise DataError(f"suite {self.name}, {name}: {e}; for the suite, set suite.data_dir=DIR (a folder with {wanted}) or TINKERX_DATA") from None
            validate_reward(bench.reward, dataset.test[:4])
            reward = GuardedReward(bench.reward, self.reward_timeout_s)
            # Each benchmark with its own data set's budget (suite.benchmarks.NAME.dataset.max_tokens).
            loaded[name] = LoadedBenchmark(dataset, reward, bench.max_examples, dataset.max_tokens)
        return loaded

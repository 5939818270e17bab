"""Where a GRPO step's time goes on the local backend: sample / reward / train.

    flock /tmp/tinkerx-heavy.lock python benchmarks/bench_grpo_step.py [--smollm2]

One step is what ``method=grpo`` does: snapshot the weights for sampling, sample ``group_size``
completions of each prompt in one batched request, grade them with the numeric reward (through
GuardedReward, as in a run), then ``forward_backward(importance_sampling)`` + ``optim_step``.
Every group is trained on here, signal or not, so the train figure is a step's full cost (a run
skips groups whose rewards are all equal). Shapes follow experiments/tiny_grpo.yaml and
experiments/smollm2_grpo_arithmetic.yaml; figures are medians over the timed steps.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from _common import base_parser, console, machine_line, model_loaders, open_service, table, timed

SHAPES = {  # label -> (LoRA rank, prompts per step, group size, max_tokens)
    "tiny": (0, 32, 8, 8),
    "smollm2-135m": (16, 8, 8, 16),
}


def grpo_step(client: Any, tokenizer: Any, dataset: Any, examples: list[Any], group_size: int, max_tokens: int, reward: Any) -> dict[str, float]:
    from tinker import types

    from tinkerx.methods.rl.rollouts import rl_datum, sample_groups, score_groups

    params = types.SamplingParams(max_tokens=max_tokens, temperature=1.0)
    sample_s, groups = timed(lambda: sample_groups(client.save_weights_and_get_sampling_client(), tokenizer, dataset, examples, group_size, params))
    reward_s, _ = timed(lambda: score_groups(groups, reward))

    def train() -> None:
        data = [rl_datum(g.prompt_T, s) for g in groups for s in g.samples]
        fwd = client.forward_backward(data, "importance_sampling")
        opt = client.optim_step(types.AdamParams(learning_rate=1e-5))
        fwd.result(), opt.result()

    train_s, _ = timed(train)
    samples = [s for g in groups for s in g.samples]
    return {
        "sample": sample_s, "reward": reward_s, "train": train_s,
        "generated": sum(len(s.tokens_T) for s in samples),
        "trained": sum(len(g.prompt_T) + len(s.tokens_T) for g in groups for s in g.samples),
    }


def bench_model(label: str, loader: Any, steps: int) -> tuple:
    from tinkerx.data.arithmetic import Arithmetic
    from tinkerx.methods.rl.pool import PromptPool
    from tinkerx.rewards.guarded import GuardedReward
    from tinkerx.rewards.numeric import NumericReward

    rank, prompts, group_size, max_tokens = SHAPES[label]
    backend, service = open_service(loader)
    try:
        client = service.create_lora_training_client(loader.base_model, rank=rank, seed=0).result()
        tokenizer = client.get_tokenizer()
        dataset = Arithmetic(seed=0)
        pool, reward = PromptPool(dataset.train, seed=0), GuardedReward(NumericReward())
        grpo_step(client, tokenizer, dataset, pool.take(prompts), group_size, max_tokens, reward)  # warm-up
        runs = [grpo_step(client, tokenizer, dataset, pool.take(prompts), group_size, max_tokens, reward) for _ in range(steps)]
    finally:
        backend.close()
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    total = med["sample"] + med["reward"] + med["train"]
    console.print(f"  {label}: " + ", ".join(f"{k} {[round(r[k], 3) for r in runs]}" for k in ("sample", "reward", "train")))
    return (
        label, f"LoRA r={rank}" if rank else "full", f"{prompts} x {group_size}, <= {max_tokens} new",
        f"{med['sample']:.2f}", f"{med['reward']:.3f}", f"{med['train']:.2f}", f"{total:.2f}",
        f"{med['sample'] / total:.0%} / {med['reward'] / total:.0%} / {med['train'] / total:.0%}",
        f"{med['generated'] / med['sample']:,.0f}", f"{med['trained'] / med['train']:,.0f}",
    )


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps for model=tiny (after one warm-up step)")
    parser.add_argument("--smollm2-steps", type=int, default=2, help="timed steps for SmolLM2-135M")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    console.print(f"[bold]bench_grpo_step[/bold]  {machine_line()}")
    rows = [bench_model(label, loader, args.steps if label == "tiny" else args.smollm2_steps) for label, loader in model_loaders(args.smollm2)]
    t = table(
        "GRPO step on the local backend (median seconds per step)",
        ["model", "training", "prompts x group", "sample s", "reward s", "train s", "step s", "sample / reward / train", "gen tok/s", "train tok/s"],
        text_columns=3,
    )
    for row in rows:
        t.add_row(*row)
    console.print(t)


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory and step time of an SFT step on long examples, with the token budget vs without.

    python benchmarks/bench_long_sft.py [--batch 32] [--tokens 2048] [--budget 4096] [--steps 2] [--warmup 1]

Each setting runs in its own fresh process (peak RSS is per process): SmolLM2-135M at rank 16
(conf/model/smollm2-135m.yaml), ``--batch`` SFT examples of ``--tokens`` tokens each, one
``forward_backward`` + ``optim_step`` per step, first with ``training.max_tokens_per_forward =
--budget`` (micro-batches, gradients accumulated), then with no budget (one pass over the whole
batch). Peak RSS comes from ``getrusage`` (the whole process, model included); the model's own
footprint is measured before the first step, so the step's share is the difference. A setting
that runs out of memory says so (the one-line ``OutOfMemoryError``) instead of taking the machine.
Step time is the median of ``--steps`` steps after ``--warmup`` untimed ones.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import console, machine_line, table

NO_BUDGET = 10**12  # a budget no batch reaches: the whole batch in one pass


def long_batch(tokenizer, batch: int, tokens: int) -> list:
    """``batch`` SFT datums of exactly ``tokens`` tokens: a short question, a long answer."""
    from tinkerx.chat import completion_tokens, prompt_tokens, supervised_datum

    words = "the quick brown fox jumps over the lazy dog while the cat watches".split()
    datums = []
    for i in range(batch):
        prompt = prompt_tokens(tokenizer, [{"role": "user", "content": f"Tell story number {i}."}])
        text = " ".join(words[(i + j) % len(words)] for j in range(tokens))
        answer = completion_tokens(tokenizer, text)[: tokens + 1 - len(prompt)]
        datums.append(supervised_datum(prompt, answer))
    return datums


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child(batch: int, tokens: int, budget: int, steps: int, warmup: int) -> dict:
    import torch
    from tinker import types

    from tinkerx.backends.local import LocalBackend
    from tinkerx.errors import OutOfMemoryError
    from tinkerx.models.gguf import GGUFModel

    backend = LocalBackend(device="cpu")
    service = backend.open([GGUFModel()], Path("/tmp") / f"tinkerx-bench-long-{budget}", seed=0)
    service.limit_tokens_per_forward(budget)
    client = service.create_lora_training_client("HuggingFaceTB/SmolLM2-135M-Instruct", rank=16, seed=0).result()
    data = long_batch(client.get_tokenizer(), batch, tokens)
    model_mb = peak_rss_mb()
    times, losses = [], []
    try:
        for _ in range(warmup + steps):
            start = time.perf_counter()
            out = client.forward_backward(data, "cross_entropy").result()
            client.optim_step(types.AdamParams(learning_rate=1e-4)).result()
            times.append(time.perf_counter() - start)
            losses.append(out.metrics["loss:sum"])
    except OutOfMemoryError as e:
        return {"budget": budget, "error": str(e), "model_mb": model_mb, "peak_mb": peak_rss_mb()}
    finally:
        backend.close()
    return {"budget": budget, "step_s": statistics.median(times[warmup:]), "times": times, "first_loss": losses[0],
            "model_mb": model_mb, "peak_mb": peak_rss_mb(), "threads": torch.get_num_threads()}  # fmt: skip


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--budget", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.batch, args.tokens, args.child, args.steps, args.warmup)))
        return
    results = []
    for budget in (args.budget, NO_BUDGET):
        command = [sys.executable, __file__, "--batch", str(args.batch), "--tokens", str(args.tokens), "--steps", str(args.steps), "--warmup", str(args.warmup), "--child", str(budget)]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            results.append({"budget": budget, "error": f"exit {done.returncode}: {(done.stderr.strip().splitlines() or ['?'])[-1]}"})
        else:
            results.append(json.loads(lines[-1]))
    console.print(machine_line())
    t = table(f"SFT step, SmolLM2-135M rank 16, {args.batch} x {args.tokens} tokens, CPU", ["setting", "step s", "peak RSS MB", "model MB", "step MB", "first loss"], text_columns=1)
    for r in results:
        label = "no budget (one pass)" if r["budget"] == NO_BUDGET else f"max_tokens_per_forward={r['budget']}"
        if "error" in r:
            t.add_row(label, r["error"][:60], f"{r.get('peak_mb', 0):,.0f}", f"{r.get('model_mb', 0):,.0f}", "-", "-")
        else:
            t.add_row(label, f"{r['step_s']:.1f}", f"{r['peak_mb']:,.0f}", f"{r['model_mb']:,.0f}", f"{r['peak_mb'] - r['model_mb']:,.0f}", f"{r['first_loss']:.2f}")
    console.print(t)
    if all("error" not in r for r in results):
        split, whole = results
        console.print(f"time ratio budget / one pass: {split['step_s'] / whole['step_s']:.3f} (goal <= 1.10); "
                      f"step memory ratio: {(split['peak_mb'] - split['model_mb']) / max(whole['peak_mb'] - whole['model_mb'], 1):.3f}")  # fmt: skip
    print(json.dumps(results))


if __name__ == "__main__":
    main()

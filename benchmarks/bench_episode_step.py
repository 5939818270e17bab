"""The episode runner's share of a GRPO step: one-turn environments vs the loop they replaced.

    flock /tmp/tinkerx-heavy.lock python benchmarks/bench_episode_step.py [--threads 1] [--repeats 20] [--steps 4]

GRPO samples every data set prompt as a one-turn episode (tinkerx/envs) since the runner came in;
before, it rendered the prompts, sent one request per prompt and decoded the replies in a short loop.
Both paths are timed here on the same batch (16 prompts x 8 samples of 8 tokens, the tiny model's
tokenizer) against a sampling client that answers at once -- so what is timed is the code around
sampling, the part the runner changed -- interleaved ``--repeats`` times. The GRPO step they sit in
is then timed for real (``method=grpo`` on the tiny model, same shape, ``--steps`` steps; median of
``time/step_s``). Reported: runner overhead per step = median(new - old), and the step's time with
the runner over the step's time without it: (step) / (step - overhead). Goal: <= 1.05.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

from _common import base_parser, console, interleave, machine_line, table, verdict

GROUPS, GROUP_SIZE, MAX_TOKENS = 16, 8, 8
GOAL = 1.05


class InstantSampler:
    """Answers every request at once with ``MAX_TOKENS`` sampled tokens per sample."""

    def __init__(self, tokenizer) -> None:
        self.reply = tokenizer.encode("1234567", add_special_tokens=False)[: MAX_TOKENS - 1] + [tokenizer.eos_token_id]

    def sample(self, prompt, num_samples, sampling_params):
        future: Future = Future()
        future.set_result(SimpleNamespace(sequences=[SimpleNamespace(tokens=list(self.reply), logprobs=[-0.5] * len(self.reply), stop_reason="stop")
                                                     for _ in range(num_samples)]))  # fmt: skip
        return future


def old_path(sampler, tokenizer, dataset, examples, params):
    """GRPO's rollouts before episodes (launch_groups + PendingGroups.collect as they were)."""
    from tinkerx.chat import decode_completion, prompt_tokens
    from tinkerx.sampler import sample_prompts

    prompts = [prompt_tokens(tokenizer, dataset.messages(ex)) for ex in examples]
    futures = sample_prompts(sampler, prompts, GROUP_SIZE, params)
    return [[(list(s.tokens), list(s.logprobs), s.stop_reason, decode_completion(tokenizer, s.tokens)) for s in f.result().sequences] for f in futures]


def new_path(sampler, tokenizer, dataset, examples, params):
    from tinkerx.methods.shared.rollouts import launch_groups

    return launch_groups(sampler, tokenizer, dataset, examples, GROUP_SIZE, params).collect()


def grpo_step_seconds(steps: int, threads: int | None) -> float:
    from tests.helpers.compose import compose
    from tinkerx.app import run

    run_dir = Path(tempfile.mkdtemp(prefix="tinkerx-bench-episode-")) / "run"
    overrides = ["method=grpo", f"training.max_steps={steps + 1}", f"training.batch_size={GROUPS}", f"method.group_size={GROUP_SIZE}",
                 f"sampling.max_tokens={MAX_TOKENS}", "method.evaluate_baseline=false", "training.eval_every=0", "method.save_final=false",
                 "training.save_every=0", "evaluator.max_examples=1", *([f"backend.num_threads={threads}"] if threads else [])]  # fmt: skip
    run(compose(overrides), run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return statistics.median([r["time/step_s"] for r in rows if "time/step_s" in r][1:])  # the first step warms up


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tinker import types

    from hydra.utils import instantiate

    from tests.helpers.compose import compose
    from tinkerx.models.tiny import TinyModel

    tokenizer = TinyModel().load_tokenizer()
    dataset = instantiate(compose([]).dataset)
    examples = dataset.train[:GROUPS]
    params = types.SamplingParams(max_tokens=MAX_TOKENS, temperature=1.0)
    sampler = InstantSampler(tokenizer)
    assert [[s.text for s in g.samples] for g in new_path(sampler, tokenizer, dataset, examples, params)] == \
        [[s[3] for s in g] for g in old_path(sampler, tokenizer, dataset, examples, params)]  # fmt: skip
    times = interleave(lambda: new_path(sampler, tokenizer, dataset, examples, params),
                       lambda: old_path(sampler, tokenizer, dataset, examples, params), args.repeats)  # fmt: skip
    overhead = statistics.median(a - b for a, b in zip(times["ours"], times["plain"]))
    step = grpo_step_seconds(args.steps, args.threads)
    ratio = step / max(step - overhead, 1e-9)

    console.print(machine_line())
    t = table(f"one-turn episodes vs the loop before them, GRPO step of {GROUPS} prompts x {GROUP_SIZE} samples x {MAX_TOKENS} tokens (tiny)",
              ["what", "", "seconds"])  # fmt: skip
    t.add_row("rollout code, before (median)", "", f"{statistics.median(times['plain']):.4f}")
    t.add_row("rollout code, episode runner (median)", "", f"{statistics.median(times['ours']):.4f}")
    t.add_row("runner overhead per step (median of differences)", "", f"{overhead:.4f}")
    t.add_row("GRPO step with the runner (median time/step_s)", "", f"{step:.3f}")
    t.add_row("step with runner / step without", f"goal <= {GOAL}", f"{ratio:.3f} {verdict(ratio, GOAL, higher_is_better=False)}")
    console.print(t)


if __name__ == "__main__":
    main()

"""A GRPO step through the tinker SDK against a server with latency: in flight together, or one by one.

    python benchmarks/bench_concurrency.py [--latency 0.3] [--prompts 16] [--group 4]

``tinkerx.serve`` adds a fixed latency L to every request that submits work, like a service far
away. One GRPO-like step has four dependent phases -- save the weights for sampling, sample N
prompts (G samples each), forward_backward, optim_step -- so with every request of a phase in
flight at once its critical path is about ``4 L`` plus the compute. The table reports

    ratio = step time / (4 L + step time at L = 0)

for the step as tinkerx methods issue it (all N sample requests submitted before any is awaited,
optim_step submitted before forward_backward is awaited; goal <= 1.1), next to a baseline that
awaits each request before sending the next (about ``(N + 3) L`` plus the compute).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import base_parser, console, machine_line, table, verdict

GOAL = 1.1
PHASES = 4  # save for sampler -> sample -> forward_backward -> optim_step


def grpo_step(tc: Any, prompts: list[list[int]], group: int, max_tokens: int, concurrent: bool) -> None:
    from tinker import types

    sampler = tc.save_weights_and_get_sampling_client().result()
    params = types.SamplingParams(max_tokens=max_tokens, temperature=1.0)
    if concurrent:
        futures = [sampler.sample(types.ModelInput.from_ints(p), group, params) for p in prompts]
        results = [f.result() for f in futures]
    else:
        results = [sampler.sample(types.ModelInput.from_ints(p), group, params).result() for p in prompts]
    data = []
    for prompt, result in zip(prompts, results):
        for i, seq in enumerate(result.sequences):
            advantage = 1.0 if i % 2 else -1.0  # any zero-mean advantages: the rewards are not what is timed
            data.append(
                types.Datum(
                    model_input=types.ModelInput.from_ints(prompt + seq.tokens[:-1]),
                    loss_fn_inputs={
                        "target_tokens": prompt[1:] + seq.tokens,
                        "logprobs": [0.0] * (len(prompt) - 1) + seq.logprobs,
                        "advantages": [0.0] * (len(prompt) - 1) + [advantage] * len(seq.tokens),
                    },
                )
            )
    adam = types.AdamParams(learning_rate=1e-4)
    if concurrent:
        fwd = tc.forward_backward(data, "importance_sampling")
        opt = tc.optim_step(adam)
        fwd.result(), opt.result()
    else:
        tc.forward_backward(data, "importance_sampling").result()
        tc.optim_step(adam).result()


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.3, help="seconds added to each submitting request (L)")
    parser.add_argument("--prompts", type=int, default=16, help="sample requests per step (N)")
    parser.add_argument("--group", type=int, default=4, help="samples per request (G)")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["TINKER_TELEMETRY"] = "0"

    import tinker

    from tinkerx.backends.local import LocalBackend
    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.context import ServerConfig
    from tinkerx.serve.runner import ServerThread, make_app

    loader = TinyModel()
    state = Path(tempfile.mkdtemp(prefix="tinkerx-bench-"))
    backend = LocalBackend(device="cpu", num_threads=args.threads)
    app, ctx = make_app(backend.open([loader], state, seed=0), loader.base_model, state, ServerConfig(poll_hold_s=30))
    prompts = [[5 + i, 17, 33 + i, 48] for i in range(args.prompts)]
    times: dict[str, list[float]] = {"floor": [], "concurrent": [], "one at a time": []}
    with ServerThread(app) as server:
        tc = tinker.ServiceClient(base_url=server.url, api_key="tml-bench").create_lora_training_client(loader.base_model, rank=0, seed=0).result()
        grpo_step(tc, prompts, args.group, args.max_tokens, concurrent=True)  # warm up
        for _ in range(args.repeats):
            for name, latency, concurrent in (("floor", 0.0, True), ("concurrent", args.latency, True), ("one at a time", args.latency, False)):
                ctx.config.latency_s = latency
                start = time.perf_counter()
                grpo_step(tc, prompts, args.group, args.max_tokens, concurrent)
                times[name].append(time.perf_counter() - start)
    ctx.close()
    backend.close()

    floor = statistics.median(times["floor"])
    critical = PHASES * args.latency + floor
    out = table(
        f"GRPO step through the tinker SDK, L = {args.latency:.2f} s per request, N = {args.prompts} requests x G = {args.group} samples",
        ["issued", "requests in flight", "step (s)", "critical path (s)", "ratio", f"goal <= {GOAL}"],
    )
    for name, in_flight in (("concurrent", f"{args.prompts}"), ("one at a time", "1")):
        step = statistics.median(times[name])
        ratio = step / critical
        out.add_row(name, in_flight, f"{step:.2f}", f"{critical:.2f}", f"{ratio:.2f}x", verdict(ratio, GOAL, False) if name == "concurrent" else "baseline")
    console.print(out)
    console.print(f"critical path = {PHASES} x L + {floor:.2f} s (the same step at L = 0); median of {args.repeats} repeats; {machine_line()}")


if __name__ == "__main__":
    main()

"""A GRPO step through the tinker SDK against a server with latency: in flight together, or one by one.

    python benchmarks/bench_concurrency.py [--latency 0.5] [--prompts 16] [--group 4]

``tinkerx.serve`` adds a fixed latency L to every request that submits work, like a service far
away. One GRPO-like step has four dependent phases -- save the weights for sampling, sample N
prompts (G samples each), forward_backward, optim_step -- so with every request of a phase in
flight at once its critical path is about ``4 L`` plus the compute. The table reports

    ratio = step time / (4 L + step time at L = 0)

(the step at L = 0 is timed right before each measured step and the median of the per-repeat
ratios is reported). By default the server's backend is a stand-in that answers every request at
once, so the step time is latency plus protocol overhead (the SDK, HTTP, the server) and nothing
else: on a shared machine the model's compute drifts by more than the latencies being measured.
``--model tiny`` serves the real tiny model through the local backend instead.
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


class InstantService:
    """The local backend's service shape with answers that cost no compute (see the module docstring)."""

    base_model = "tinkerx/tiny"

    def create_lora_training_client(self, base_model: str, rank: int = 0, seed: int | None = None, **_: Any):
        return _done(InstantTraining())


class InstantTraining:
    def forward_backward(self, data: list, loss_fn: str, loss_fn_config: Any = None):
        from tinker import types

        outputs = [{"logprobs": types.TensorData(data=[0.0] * d.model_input.length, dtype="float32")} for d in data]
        return _done(types.ForwardBackwardOutput(loss_fn_output_type="ArrayRecord", loss_fn_outputs=outputs, metrics={"loss:sum": 0.0}))

    def optim_step(self, adam: Any):
        from tinker import types

        return _done(types.OptimStepResponse(metrics={}))

    def save_weights_and_get_sampling_client(self, name: str | None = None):
        return InstantSampler()


class InstantSampler:
    def sample(self, prompt: Any, num_samples: int, sampling_params: Any, include_prompt_logprobs: bool = False):
        from tinker import types

        n = sampling_params.max_tokens
        seqs = [types.SampledSequence(stop_reason="length", sequence_id="", _tokens_list=[7] * n, _logprobs_list=[-1.0] * n) for _ in range(num_samples)]
        return _done(types.SampleResponse(sequences=seqs))


def _done(value: Any):
    from concurrent.futures import Future

    future: Future = Future()
    future.set_result(value)
    return future


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5, help="seconds added to each submitting request (L)")
    parser.add_argument("--prompts", type=int, default=16, help="sample requests per step (N)")
    parser.add_argument("--group", type=int, default=4, help="samples per request (G)")
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", choices=["instant", "tiny"], default="instant", help="the server's backend (see above)")
    args = parser.parse_args()
    os.environ["TINKER_TELEMETRY"] = "0"

    import tinker

    from tinkerx.backends.local import LocalBackend
    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.context import ServerConfig
    from tinkerx.serve.runner import ServerThread, make_app

    state = Path(tempfile.mkdtemp(prefix="tinkerx-bench-"))
    if args.model == "tiny":
        loader, backend = TinyModel(), LocalBackend(device="cpu", num_threads=args.threads)
        service = backend.open([loader], state, seed=0)
    else:
        loader = backend = service = InstantService()
    app, ctx = make_app(service, loader.base_model, state, ServerConfig(poll_hold_s=30))
    prompts = [[5 + i, 17, 33 + i, 48] for i in range(args.prompts)]
    steps: dict[str, list[float]] = {"concurrent": [], "one at a time": []}
    ratios: dict[str, list[float]] = {"concurrent": [], "one at a time": []}
    floors: list[float] = []
    with ServerThread(app) as server:
        service = tinker.ServiceClient(base_url=server.url, api_key="tml-bench")
        tc = service.create_lora_training_client(loader.base_model, rank=0, seed=0).result()

        def step(latency: float, concurrent: bool) -> float:
            ctx.config.latency_s = latency
            start = time.perf_counter()
            grpo_step(tc, prompts, args.group, args.max_tokens, concurrent)
            return time.perf_counter() - start

        step(0.0, True)  # warm up
        for _ in range(args.repeats):
            for name, concurrent in (("concurrent", True), ("one at a time", False)):
                # Each measured step right after its own floor: a ratio of neighbours cancels the drift.
                floor = step(0.0, True)
                took = step(args.latency, concurrent)
                floors.append(floor)
                steps[name].append(took)
                ratios[name].append(took / (PHASES * args.latency + floor))
    ctx.close()
    if args.model == "tiny":
        backend.close()

    critical = PHASES * args.latency + statistics.median(floors)
    out = table(
        f"GRPO step through the tinker SDK ({args.model} backend), L = {args.latency:.2f} s per request, N = {args.prompts} requests x G = {args.group} samples",
        ["issued", "requests in flight", "step (s)", "critical path (s)", "ratio", f"goal <= {GOAL}"],
    )
    for name, in_flight in (("concurrent", str(args.prompts)), ("one at a time", "1")):
        ratio = statistics.median(ratios[name])
        verdict_cell = verdict(ratio, GOAL, False) if name == "concurrent" else "baseline"
        out.add_row(name, in_flight, f"{statistics.median(steps[name]):.2f}", f"{critical:.2f}", f"{ratio:.2f}x", verdict_cell)
    console.print(out)
    console.print(
        f"critical path = {PHASES} x L + the same step at L = 0 ({statistics.median(floors):.2f} s median); "
        f"ratio: median over {args.repeats} repeats; {machine_line()}"
    )


if __name__ == "__main__":
    main()

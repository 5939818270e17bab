"""Local sampling tokens/s against plain ``model.generate`` on the same model, batch and lengths.

    flock /tmp/tinkerx-heavy.lock python benchmarks/bench_sampling.py [--smollm2]

Two paths are measured, each against the ``generate`` call that does the same work:

* ``sample``: one prompt, ``num_samples=B`` -- ``generate`` on B copies of the prompt;
* ``sample_many``: B different prompts (left-padded), one sample each -- ``generate`` on the same
  left-padded batch with its attention mask.

Both sides sample at temperature 1 with no top-k / top-p and run exactly ``max_tokens`` steps: the
model is loaded with a tokenizer (and generation config) without an end-of-turn token, so nothing
stops early and the token counts match (checked on our side). Our side also returns per-token logprobs, a stop reason and a future per
request; ``generate`` returns tokens only.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from _common import base_parser, console, interleave, machine_line, median_ratio, model_loaders, open_service, table, verdict

GOAL = 1.0  # ours / generate, tokens per second


class WithoutEos:
    """The same model with a tokenizer that has no eos token, so every row runs to ``max_tokens``."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.base_model = inner, inner.base_model

    def load_tokenizer(self) -> Any:
        tokenizer = self.inner.load_tokenizer()
        tokenizer.eos_token = None
        return tokenizer

    def load_model(self, device: Any, dtype: Any) -> Any:
        return self.inner.load_model(device, dtype)


def questions(n: int) -> list[str]:
    # Different lengths on purpose: sample_many then left-pads, which is the harder path.
    return [f"What is {7 * i + 3} plus {11 ** (i % 4 + 1)}? Explain briefly." for i in range(n)]


def bench_model(label: str, loader: Any, batch: int, max_tokens: int, repeats: int, rows: list[tuple]) -> None:
    import torch
    from tinker import types
    from transformers import GenerationConfig

    from tinkerx.chat import prompt_tokens

    backend, service = open_service(WithoutEos(loader))
    try:
        client = service.create_sampling_client(base_model=loader.base_model)
        tokenizer, model = client.get_tokenizer(), client.engine.model  # generate runs on this very model
        assert tokenizer.eos_token_id is None
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        prompts = [prompt_tokens(tokenizer, [{"role": "user", "content": q}]) for q in questions(batch)]
        # generate fills unset values from the model's generation_config, eos included: clear it
        # there too, or rows would stop (and pad) at the first end-of-turn token.
        model.generation_config.eos_token_id = None
        gen_config = GenerationConfig(
            do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_tokens, eos_token_id=None, pad_token_id=pad
        )
        seeds = iter(range(10**6))

        def ours_sample() -> int:
            params = types.SamplingParams(max_tokens=max_tokens, temperature=1.0, seed=next(seeds))
            response = client.sample(types.ModelInput.from_ints(prompts[0]), batch, params).result()
            return count(response.sequences)

        def ours_many() -> int:
            params = types.SamplingParams(max_tokens=max_tokens, temperature=1.0, seed=next(seeds))
            futures = client.sample_many([types.ModelInput.from_ints(p) for p in prompts], 1, params)
            return count([s for f in futures for s in f.result().sequences])

        def count(sequences: list) -> int:
            n = sum(len(s.tokens) for s in sequences)
            assert n == batch * max_tokens and all(s.stop_reason == "length" for s in sequences), n
            return n

        def generate(input_ids: "torch.Tensor", mask: "torch.Tensor"):
            def run() -> int:
                torch.manual_seed(next(seeds))
                with torch.no_grad():
                    out = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gen_config)
                n = (out.shape[1] - input_ids.shape[1]) * out.shape[0]
                assert n == batch * max_tokens, n
                return n

            return run

        device = client.engine.device
        same = torch.tensor([prompts[0]] * batch, device=device)
        width = max(len(p) for p in prompts)
        padded = torch.full((batch, width), pad, dtype=torch.long, device=device)
        padded_mask = torch.zeros_like(padded)
        for i, p in enumerate(prompts):
            padded[i, width - len(p) :] = torch.tensor(p)
            padded_mask[i, width - len(p) :] = 1

        cases = [
            (f"sample(num_samples={batch})", ours_sample, generate(same, torch.ones_like(same)), len(prompts[0])),
            (f"sample_many({batch} prompts)", ours_many, generate(padded, padded_mask), width),
        ]
        for _, ours, plain, _ in cases:  # warm-up: allocator, kernels, the worker thread
            ours(), plain()
        tokens = batch * max_tokens
        for name, ours, plain, prompt_len in cases:
            times = interleave(ours, plain, repeats)
            ratio = median_ratio(times["plain"], times["ours"])  # tokens/s ratio = inverse time ratio
            rows.append((
                label, name, f"{batch} x {max_tokens} (prompt {prompt_len})",
                f"{tokens / statistics.median(times['ours']):,.0f}", f"{tokens / statistics.median(times['plain']):,.0f}",
                f"{ratio:.2f}x", verdict(ratio, GOAL, higher_is_better=True),
            ))
            console.print(f"  {label} {name}: ours {[round(t, 3) for t in times['ours']]} s, generate {[round(t, 3) for t in times['plain']]} s")
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="rows per call for model=tiny (default 64)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per row for model=tiny (default 64)")
    parser.add_argument("--smollm2-batch", type=int, default=8)
    parser.add_argument("--smollm2-max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per case; medians are reported")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    console.print(f"[bold]bench_sampling[/bold]  {machine_line()}")
    rows: list[tuple] = []
    for label, loader in model_loaders(args.smollm2):
        small = label == "tiny"
        batch = args.batch if small else args.smollm2_batch
        max_tokens = args.max_tokens if small else args.smollm2_max_tokens
        bench_model(label, loader, batch, max_tokens, args.repeats if small else max(3, args.repeats // 2), rows)

    t = table(
        "Local sampling vs model.generate (median tokens/s; ratio = median of per-repeat ratios)",
        ["model", "path", "batch x new tokens", "tinkerx tok/s", "generate tok/s", "ratio", f"goal >= {GOAL:.1f}x"],
    )
    for row in rows:
        t.add_row(*row)
    console.print(t)


if __name__ == "__main__":
    sys.exit(main())

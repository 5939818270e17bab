"""Evaluation through an OpenAI-compatible endpoint (``tinkerx.serve``) at several concurrencies.

    python benchmarks/bench_endpoint_eval.py [--examples 64] [--max-tokens 16] [--concurrency 1 8 32]

The same greedy evaluation (arithmetic test split, numeric reward) runs through ``backend=openai``
against ``tinkerx.serve`` on loopback, and in-process (``backend=local``: one ``sample_many`` batch,
no HTTP), back to back in each repeat. The table reports examples/s of each and

    ratio = endpoint examples/s / in-process examples/s

(median of the per-repeat ratios). The in-process figure is the ceiling: the server batches
concurrent requests into one decode, so the ratio shows how much of it HTTP, JSON and the request
queue leave at each concurrency.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from _common import base_parser, console, interleave, machine_line, model_loaders, open_service, table


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from tinkerx.backends.openai import OpenAIBackend
    from tinkerx.data.arithmetic import Arithmetic
    from tinkerx.eval.evaluator import Evaluator
    from tinkerx.rewards.numeric import NumericReward
    from tinkerx.serve.runner import local_server

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = Arithmetic(train_size=0, validation_size=0, test_size=args.examples)
    console.print(machine_line())
    out = table(f"evaluation of {args.examples} examples, {args.max_tokens} tokens, greedy", ["model", "concurrency", "endpoint ex/s", "in-process ex/s", "ratio"])
    for label, loader in model_loaders(args.smollm2):
        backend, service = open_service(loader)
        evaluator = Evaluator(dataset, loader.load_tokenizer(), NumericReward(), max_examples=None, max_tokens=args.max_tokens)
        in_process = service.create_sampling_client(base_model=loader.base_model)
        with local_server(loader, Path(tempfile.mkdtemp(prefix="tinkerx-bench-"))) as server:
            for concurrency in args.concurrency:
                endpoint = OpenAIBackend(f"{server.url}/v1", concurrency=concurrency)
                endpoint_service = endpoint.open([loader], Path(tempfile.mkdtemp(prefix="tinkerx-bench-")))
                remote = endpoint_service.create_sampling_client()
                a, b = evaluator(remote).records, evaluator(in_process).records  # warm up, and check they agree
                assert [r["completion"] for r in a] == [r["completion"] for r in b], "endpoint and in-process disagree"
                times = interleave(lambda: evaluator(remote), lambda: evaluator(in_process), args.repeats)
                endpoint.close()
                ratio = statistics.median(p / o for o, p in zip(times["ours"], times["plain"]))
                out.add_row(label, str(concurrency), f"{args.examples / statistics.median(times['ours']):.1f}",
                            f"{args.examples / statistics.median(times['plain']):.1f}", f"{ratio:.2f}")
        backend.close()
    console.print(out)


if __name__ == "__main__":
    main()

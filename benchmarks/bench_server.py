"""``tinkerx.serve`` under many clients: batching across requests, latency, fairness.

    python benchmarks/bench_server.py [--max-tokens 256] [--repeats 3] [--server process|thread]

Three measurements against a ``model=tiny`` server on loopback, through the unmodified tinker SDK.
The server runs as its own process (``python -m tinkerx.serve``, as users run it), so the clients'
Python work does not share the server's interpreter; ``--server thread`` runs it in this process.

* batching: tokens/s of 16 concurrent single-sample requests over tokens/s of one request with
  ``num_samples=16`` (the plain baseline, measured in the same run, interleaved); goal >= 0.8;
* latency: p50/p90/p99 of one sample request while 1, 8 and 32 clients send them back to back;
* fairness: a 16-token request's latency while another client's 2000-token job runs; goal < 2 s.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _common import base_parser, console, machine_line, median_ratio, table, verdict

BATCH_GOAL = 0.8
FAIRNESS_GOAL_S = 2.0
KEY = "tml-bench-000000000000"
BASE = "tinkerx/tiny"


def tokens_per_s(sampler, concurrent_requests: bool, max_tokens: int) -> float:
    from tinker import types

    params = types.SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=[])  # greedy: every sample runs to max_tokens
    prompt = types.ModelInput.from_ints([5, 17, 33])
    start = time.perf_counter()
    if concurrent_requests:
        futures = [sampler.sample(prompt, 1, params) for _ in range(16)]
        results = [f.result() for f in futures]
    else:
        results = [sampler.sample(prompt, 16, params).result()]
    seconds = time.perf_counter() - start
    return sum(len(s.tokens) for r in results for s in r.sequences) / seconds


def latencies(url: str, clients: int, per_client: int, max_tokens: int) -> list[float]:
    import tinker
    from tinker import types

    samplers = [tinker.ServiceClient(base_url=url, api_key=KEY).create_sampling_client(base_model=BASE).result() for _ in range(clients)]
    params = types.SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=[])
    out: list[float] = []
    lock = threading.Lock()

    def client(sampler) -> None:
        for i in range(per_client):
            start = time.perf_counter()
            sampler.sample(types.ModelInput.from_ints([5, 6, i % 50]), 1, params).result()
            with lock:
                out.append(time.perf_counter() - start)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, samplers))
    return out


def fairness(url: str) -> tuple[float, float]:
    """Seconds of a 16-token request alone, and while another client's 2000-token job runs."""
    import tinker
    from tinker import types

    hog = tinker.ServiceClient(base_url=url, api_key=KEY).create_sampling_client(base_model=BASE).result()
    short = tinker.ServiceClient(base_url=url, api_key=KEY).create_sampling_client(base_model=BASE).result()
    params = types.SamplingParams(max_tokens=16, temperature=0.0, stop=[])
    prompt = types.ModelInput.from_ints([5, 6])
    short.sample(prompt, 1, params).result()
    alone = min(_timed(lambda: short.sample(prompt, 1, params).result()) for _ in range(3))
    long_job = hog.sample(types.ModelInput.from_ints([9, 9]), 4, types.SamplingParams(max_tokens=2000, temperature=0.0, stop=[]))
    time.sleep(1.0)  # the long job is decoding
    during = _timed(lambda: short.sample(prompt, 1, params).result())
    assert not long_job.future().done(), "the long job finished before the short request was timed"
    return alone, during


def decode_batches(url: str) -> int:
    """Decode batches the server's sampling scheduler has run so far (``/tinkerx/stats``)."""
    import json

    request = urllib.request.Request(f"{url}/tinkerx/stats", headers={"X-API-Key": KEY})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())["sampling"]["batches"]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextlib.contextmanager
def server_process(max_positions: int, state: str):
    """``python -m tinkerx.serve`` on a free loopback port, stopped when the block ends."""
    from tinkerx.serve.runner import free_port

    port = free_port()
    command = [
        sys.executable, "-m", "tinkerx.serve", "model=tiny", f"model.loader.max_position_embeddings={max_positions}",
        f"server.port={port}", "server.poll_hold_s=5", f"server.max_tokens={max_positions}", f"hydra.run.dir={state}/run",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v1/healthz", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tinkerx serve did not start: {proc.stderr.read()[-2000:] if proc.poll() is not None else 'timeout'}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def server_thread(max_positions: int, state: str):
    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.context import ServerConfig
    from tinkerx.serve.runner import local_server

    config = ServerConfig(poll_hold_s=5, max_tokens=max_positions)
    with local_server(TinyModel(max_position_embeddings=max_positions), Path(state), config) as server:
        yield server.url


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=256)  # a short RL completion
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-client", type=int, default=4)
    parser.add_argument("--server", choices=["process", "thread"], default="process", help="where the server runs")
    args = parser.parse_args()
    os.environ.setdefault("TINKER_TELEMETRY", "0")
    import tinker
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    console.print(machine_line())
    console.print(f"server: {args.server}, {args.max_tokens} tokens per sample")
    start_server = server_process if args.server == "process" else server_thread
    with tempfile.TemporaryDirectory() as state, start_server(4096, state) as url:
        sampler = tinker.ServiceClient(base_url=url, api_key=KEY).create_sampling_client(base_model=BASE).result()
        tokens_per_s(sampler, False, args.max_tokens)  # warm up
        ours, plain, batches = [], [], []
        for i in range(args.repeats):
            for name in (("ours", "plain") if i % 2 == 0 else ("plain", "ours")):
                before = decode_batches(url)
                (ours if name == "ours" else plain).append(tokens_per_s(sampler, name == "ours", args.max_tokens))
                if name == "ours":
                    batches.append(decode_batches(url) - before)
        ratio = median_ratio(ours, plain)
        # Late arrivals that miss a batch wait for its chunk (server.sample_chunk_tokens) to end.
        console.print(f"decode batches per round of 16 concurrent requests: {batches}")
        t = table("batching across requests (tokens/s)", ["case", "what", "tokens/s", "ratio", "goal"])
        t.add_row("plain", "1 request, num_samples=16", f"{statistics.median(plain):.0f}", "", "")
        t.add_row("ours", "16 concurrent requests, 1 sample each", f"{statistics.median(ours):.0f}", f"{ratio:.2f}", f">= {BATCH_GOAL} {verdict(ratio, BATCH_GOAL, True)}")
        console.print(t)

        t = table(f"latency of one {args.max_tokens}-token sample request", ["clients", "requests", "p50 s", "p90 s", "p99 s"], text_columns=1)
        for clients in (1, 8, 32):
            lat = sorted(latencies(url, clients, args.per_client, args.max_tokens))
            q = statistics.quantiles(lat, n=100, method="inclusive")
            t.add_row(str(clients), str(len(lat)), f"{q[49]:.2f}", f"{q[89]:.2f}", f"{q[98]:.2f}")
        console.print(t)

        alone, during = fairness(url)
        t = table("fairness: a 16-token request while another client's 2000-token job runs", ["case", "what", "seconds", "goal"])
        t.add_row("alone", "16 tokens, nothing else running", f"{alone:.2f}", "")
        t.add_row("during", "16 tokens, 4 x 2000-token job running", f"{during:.2f}", f"< {FAIRNESS_GOAL_S} {verdict(-during, -FAIRNESS_GOAL_S, True)}")
        console.print(t)


if __name__ == "__main__":
    main()

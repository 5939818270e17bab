"""MMLU-STEM accuracy of a model and of a checkpoint through lm-eval's two paths into tinkerx: the
in-process adapter (``--model tinkerx``) and lm-eval's own ``local-completions`` client against
``python -m tinkerx.serve``. Prints each accuracy, whether the two paths agree, the largest
per-choice logprob difference between them and each path's wall time.

    python benchmarks/measure_lm_eval_paths.py --model smollm2-135m \\
        --checkpoint outputs/demo/smollm2_chat_sft --stride 30 --out outputs/lm_eval_paths

Every run is the command a user types (``python -m tinkerx.harness.lm_eval ...``, ``lm_eval --model
local-completions ...``), with ``--log_samples`` so the per-choice logprobs can be compared; each
writes under ``OUT/<path>_<base|checkpoint>/``. ``--stride N`` scores every Nth question (lm-eval's
``--samples``), a sample across all 18 subjects; ``--limit N`` takes the first N, which the file's
order makes the first subject only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _common import SHARED_DATA

ROOT = Path(__file__).resolve().parent.parent
TASK = "tinkerx_mmlu_stem"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(out: Path) -> list[dict]:
    """lm-eval's logged samples of the task (``samples_<task>_<date>.jsonl`` somewhere under ``out``)."""
    files = sorted(out.rglob(f"samples_{TASK}_*.jsonl"))
    if not files:
        raise SystemExit(f"no lm-eval samples under {out}")
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def accuracy(rows: list[dict]) -> float:
    return sum(r["acc"] for r in rows) / len(rows)


def choice_logprobs(rows: list[dict]) -> list[float]:
    return [float(resp[0][0]) for r in sorted(rows, key=lambda r: r["doc_id"]) for resp in r["resps"]]


def run(command: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as f:
        result = subprocess.run(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}); see {log}")
    return time.perf_counter() - start


def wait_until_up(url: str, process: subprocess.Popen, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"tinkerx.serve exited ({process.returncode}) before answering")
        try:
            urllib.request.urlopen(f"{url}/v1/models", timeout=5).read()
            return
        except OSError:
            time.sleep(2)
    raise SystemExit(f"tinkerx.serve did not answer at {url} within {timeout_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="a conf/model option")
    parser.add_argument("--base-name", default=None, help="the served base model's name (default: the model's base_model)")
    parser.add_argument("--checkpoint", required=True, help="a run folder or checkpoint folder")
    parser.add_argument("--limit", type=int, default=None, help="the first N questions (the first subject's)")
    parser.add_argument("--stride", type=int, default=30, help="every Nth question, across all subjects (ignored with --limit)")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the folder holding mmlu_stem/test.jsonl")
    parser.add_argument("--max-length", type=int, default=2047, help="lm-eval's max_length for local-completions (left-truncates)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "lm_eval_paths")
    args = parser.parse_args()

    from tinkerx.harness.lm_eval_tasks import write_tasks

    args.out.mkdir(parents=True, exist_ok=True)
    tasks = write_tasks(args.out / "tasks", args.data)
    checkpoint = str(Path(args.checkpoint).resolve())
    base_name = args.base_name
    if base_name is None:
        from omegaconf import OmegaConf

        base_name = OmegaConf.load(ROOT / "conf" / "model" / f"{args.model}.yaml").base_model
    if args.limit is not None:
        chosen, selection = f"the first {args.limit} questions", ["--limit", str(args.limit)]
    else:
        total = sum(1 for line in (args.data / "mmlu_stem" / "test.jsonl").open() if line.strip())
        indices = list(range(0, total, args.stride))
        chosen, selection = f"every {args.stride}th question ({len(indices)} of {total})", ["--samples", json.dumps({TASK: indices})]
    common = ["--tasks", TASK, *selection, "--log_samples"]
    lm_eval = Path(sys.executable).with_name("lm_eval")
    results: dict[str, dict] = {}

    for which, ckpt in (("base", None), ("checkpoint", checkpoint)):
        out = args.out / f"adapter_{which}"
        model_args = f"model={args.model},max_length={args.max_length}" + (f",checkpoint={ckpt}" if ckpt else "")
        seconds = run([sys.executable, "-m", "tinkerx.harness.lm_eval", "--model", "tinkerx", "--model_args", model_args,
                       *common, "--output_path", str(out)], args.out / f"adapter_{which}.log")  # fmt: skip
        results[f"adapter_{which}"] = {"rows": samples(out), "seconds": seconds}

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = (args.out / "serve.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "tinkerx.serve", f"model={args.model}", f"server.port={port}",
                               f"hydra.run.dir={args.out / 'serve'}"], cwd=ROOT, stdout=server_log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_until_up(url, server)
        for which, name in (("base", base_name), ("checkpoint", checkpoint)):
            out = args.out / f"server_{which}"
            model_args = f"base_url={url}/v1/completions,model={name},tokenizer_backend=remote,max_length={args.max_length},num_concurrent=1"
            seconds = run([str(lm_eval), "--model", "local-completions", "--model_args", model_args, "--include_path", str(tasks),
                           *common, "--output_path", str(out)], args.out / f"server_{which}.log")  # fmt: skip
            results[f"server_{which}"] = {"rows": samples(out), "seconds": seconds}
    finally:
        server.terminate()
        server.wait(timeout=60)

    print(f"{TASK}, {chosen}, model={args.model}, checkpoint={checkpoint}")
    print(f"{'':12} {'adapter acc':>12} {'server acc':>11} {'max |dlogprob|':>15} {'adapter s':>10} {'server s':>9}")
    for which in ("base", "checkpoint"):
        a, s = results[f"adapter_{which}"], results[f"server_{which}"]
        diff = max(abs(x - y) for x, y in zip(choice_logprobs(a["rows"]), choice_logprobs(s["rows"]), strict=True))
        print(f"{which:12} {accuracy(a['rows']):12.3f} {accuracy(s['rows']):11.3f} {diff:15.2e} {a['seconds']:10.0f} {s['seconds']:9.0f}")
    print(f"questions: {len(results['adapter_base']['rows'])}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The benchmarking loop through an OpenAI-compatible endpoint, offline, with the tiny model:
#   baseline eval through the endpoint -> SFT -> serve the checkpoint -> eval through the endpoint -> compare.
# Any endpoint works for the evaluations (ollama, vLLM, llama.cpp): only backend.base_url/model change.
#   .ci/endpoint_loop.sh      # measured about 4 min on 2 CPU cores beside another job, most of it the SFT
#   TRAIN="training.max_steps=60" .ci/endpoint_loop.sh   # shorter training
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/endpoint_loop}
PORT=${PORT:-8411}
TRAIN=${TRAIN:-}
URL=http://127.0.0.1:$PORT/v1
EVAL=(method=eval suite=dataset dataset=arithmetic evaluator.max_examples=200 sampling.max_tokens=8
      backend=openai backend.base_url=$URL backend.concurrency=32)
rm -rf "$OUT"
SERVER=
stop_server() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=; fi; }
trap stop_server EXIT
serve() {  # serve ARGS...: start tinkerx.serve and wait until /v1/models answers
  python -m tinkerx.serve model=tiny server.port=$PORT "$@" &
  SERVER=$!
  for _ in $(seq 120); do curl -sf "$URL/models" >/dev/null && return 0; sleep 1; done
  echo "tinkerx.serve did not start" >&2; exit 1
}

# 1. The base model behind its endpoint: the baseline.
serve hydra.run.dir="$OUT/serve_base"
python -m tinkerx "${EVAL[@]}" hydra.run.dir="$OUT/baseline"
stop_server

# 2. Train a variant (here the main job, SFT on 2-digit addition; GRPO works the same way).
python -m tinkerx experiment=sft_tiny_arithmetic $TRAIN hydra.run.dir="$OUT/sft"

# 3. Serve the trained checkpoint (a run folder means its final checkpoint) and benchmark it there.
serve server.checkpoint="$OUT/sft" hydra.run.dir="$OUT/serve_sft"
python -m tinkerx "${EVAL[@]}" compare="$OUT/baseline" hydra.run.dir="$OUT/after"
stop_server

python - "$OUT" <<'PY'
import json, sys
c = json.load(open(f"{sys.argv[1]}/after/comparison.json"))["benchmarks"]["arithmetic"]
acc = c["metrics"]["accuracy"]
print(f"accuracy {acc['baseline']:.3f} -> {acc['current']:.3f} ({c['accuracy_change']:+.3f}, "
      f"{c['confidence']:.0%} CI {c['accuracy_change_ci'][0]:+.3f}..{c['accuracy_change_ci'][1]:+.3f}); "
      f"{len(c['improvements'])} improved, {len(c['regressions'])} regressed of {c['paired_examples']}")
PY

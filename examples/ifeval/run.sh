#!/usr/bin/env bash
# The IFEval example: align the shipped SmolLM2-135M-Instruct to Google's IFEval instructions
# (IFEval's own strict checkers as the grader) on CPU, then print the table and the report path.
# Rollouts go through vLLM's CPU build when .venv-vllm exists (about 2.6x the tokens/s of the hf
# provider on 2 cores: README, "Rollout engines"), else through the hf provider.
# The value model is the one the lab chose for IFEval (README, "The value-model lab"): the
# two-tower model (frozen SmolLM2 towers, answer tower of 8 layers, 4 heads averaged) with a
# pairwise loss, each answer also graded for 8 other prompts. Re-running resumes. Extra options
# are passed to `iro-bb align` (e.g. --iterations 2: measured here with 1). IFEVAL_EVAL sets the
# number of held-out prompts (default 64; README's ifeval-v9 used 128).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh ifeval
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python examples/ifeval/prepare.py --max-words 48 --eval "${IFEVAL_EVAL:-64}"
engine=(--provider hf)
if [ -x .venv-vllm/bin/python ]; then engine=(--provider vllm --vllm-python .venv-vllm/bin/python --vllm-dtype float32 --vllm-kv-cache-gb 8); fi
exec .venv/bin/iro-bb align examples/ifeval/train.jsonl \
  --eval examples/ifeval/eval.jsonl \
  --grader examples/ifeval/grader.json \
  --iterations 1 --w 4 --k 4 --l 16 --max-tokens 64 --rollouts 8 \
  --value-model twotower --answer-layers 8 --value-loss pairwise --value-relabel 8 --value-heads 4 \
  "${engine[@]}" --run-name ifeval "$@"

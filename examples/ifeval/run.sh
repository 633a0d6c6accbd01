#!/usr/bin/env bash
# The IFEval example: align the shipped SmolLM2-135M-Instruct to Google's IFEval instructions
# (IFEval's own strict checkers as the grader) on CPU, then print the table and the report path.
# Rollouts go through vLLM's CPU build when .venv-vllm exists (about 2.6x the tokens/s of the hf
# provider on 2 cores: README, "Rollout engines"), else through the hf provider.
# Re-running resumes. Extra options are passed to `iro-bb align` (e.g. --iterations 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh ifeval
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python examples/ifeval/prepare.py --max-words 48 --eval 64
engine=(--provider hf)
if [ -x .venv-vllm/bin/python ]; then engine=(--provider vllm --vllm-python .venv-vllm/bin/python); fi
exec .venv/bin/iro-bb align examples/ifeval/train.jsonl \
  --eval examples/ifeval/eval.jsonl \
  --grader examples/ifeval/grader.json \
  --iterations 2 --fresh-prompts --w 4 --k 4 --l 16 --max-tokens 64 \
  --rollouts 8 --guided-rollouts 4 \
  "${engine[@]}" --run-name ifeval "$@"

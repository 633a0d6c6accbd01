#!/usr/bin/env bash
# The demo: until the align loop lands, validate the example data.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/iro-bb data check examples/upbeat/train.jsonl

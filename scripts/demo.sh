#!/usr/bin/env bash
# `make demo`: a real local model (SmolLM2-135M-Instruct on llama.cpp, port 8081) with the
# router in front of it (port 8080). Cloud tiers join when OPENAI_API_KEY / ANTHROPIC_API_KEY
# are set; without them every request is answered locally (the policy falls back to local).
# Usage: scripts/demo.sh PATH/TO/venv/bin
set -euo pipefail
BIN=${1:-.venv/bin}
LLAMA_PORT=${LLAMA_PORT:-8081}
ROUTER_PORT=${PORT:-8080}
GGUF=$("$BIN/python" scripts/smollm2_gguf.py)

"$BIN/python" -m llama_cpp.server --model "$GGUF" --host 127.0.0.1 --port "$LLAMA_PORT" \
  --model_alias smollm2 --n_ctx 2048 >/tmp/learned-router-llama.log 2>&1 &
LLAMA_PID=$!
trap 'kill $LLAMA_PID 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$LLAMA_PORT/v1/models" >/dev/null 2>&1 && break
  sleep 0.5
done
echo "llama.cpp (SmolLM2) on http://127.0.0.1:$LLAMA_PORT  (log: /tmp/learned-router-llama.log)"
echo "router on http://127.0.0.1:$ROUTER_PORT — try:  $BIN/learned-router chat --base-url http://127.0.0.1:$ROUTER_PORT/v1"
"$BIN/learned-router" serve --host 127.0.0.1 --port "$ROUTER_PORT"

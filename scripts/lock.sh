#!/usr/bin/env bash
# Re-resolve the two lock files from pyproject.toml in throwaway venvs:
#   requirements/serve.lock  serving only (what `make serve` and the Docker image install)
#   requirements/dev.lock    serving + postgres + train + dev (what `make test` installs)
# torch is pinned to the CPU build 2.13.0 (an unpinned torch pulls a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

$PY -m venv "$tmp/serve"
"$tmp/serve/bin/pip" install -q .
"$tmp/serve/bin/pip" freeze --exclude-editable | grep -v '^learned-router' > requirements/serve.lock

$PY -m venv "$tmp/dev"
"$tmp/dev/bin/pip" install -q torch==2.13.0
"$tmp/dev/bin/pip" install -q ".[postgres,train,dev]"
"$tmp/dev/bin/pip" freeze --exclude-editable | grep -v '^learned-router' \
  | sed -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/' > requirements/dev.lock
echo "locked: $(wc -l < requirements/serve.lock) serving, $(wc -l < requirements/dev.lock) dev packages"

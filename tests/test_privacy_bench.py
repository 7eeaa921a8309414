"""Benchmark (slow): cost of ``detect_sensitive`` on a typical prompt and on 1 MB texts.

    pytest -m slow -s tests/test_privacy_bench.py

Prints timings; asserts only the results (no timed assertions)."""

from __future__ import annotations

import random
import string
import time

import pytest

from router_service.privacy import detect_sensitive

WORDS = ["the", "of", "and", "to", "in", "is", "was", "for", "that", "with", "as", "on"]


def english(n: int, rng: random.Random) -> str:
    out, size = [], 0
    while size < n:
        word = rng.choice(WORDS) if rng.random() > 0.01 else str(rng.randint(1, 2030))
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:n]


def cases() -> dict[str, str]:
    rng = random.Random(0)
    line = "def f(x):\n    return x + 1  # v1.2.3 2024-01-15 id=1234567\n"
    return {
        "english prose, sparse numbers": english(1_000_000, rng),
        "source code": line * (1_000_000 // len(line)),
        "CSV of numbers": "\n".join(
            ",".join(str(rng.randint(0, 10 ** rng.randint(1, 18))) for _ in range(8))
            for _ in range(12_000)
        )[:1_000_000],
        "base64 blob": "".join(
            rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(1_000_000)
        ),
        "adversarial '1234 ' x 200k": "1234 " * 200_000,
        "adversarial '00 ' x 333k": "00 " * 333_333,
    }


@pytest.mark.slow
def test_detect_cost() -> None:
    small = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Explain transformers in 3 paragraphs. Was BERT from 2018?"},
    ]
    n = 5_000
    start = time.perf_counter()
    for _ in range(n):
        assert not detect_sensitive(small).sensitive
    print(f"\ntypical 2-message prompt: {(time.perf_counter() - start) / n * 1e6:.1f} us")
    for name, text in cases().items():
        start = time.perf_counter()
        result = detect_sensitive([{"role": "user", "content": text}])
        ms = (time.perf_counter() - start) * 1000
        print(f"{name:32s} {len(text) / 1e6:.2f} MB: {ms:7.1f} ms  kinds={result.kinds}")
        assert isinstance(result.kinds, tuple)

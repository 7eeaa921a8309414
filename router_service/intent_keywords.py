"""Short text (an intent blend's view) -> the heuristic's keyword-only intent probabilities,
fast.

The same numbers as ``HeuristicScorer.intent_probs(text, structure=False)`` (equal to float
rounding; ``tests/test_intent_keywords.py`` checks thousands of real prompts), computed
for the learned scorer's blend (``router_service.intent_blend``) on every request, so the
general path's work for channels the blend never reads is left out:

* candidate words picked by a set intersection with the few hundred intent words and
  ``stem*`` prefixes (small tables stay in cache after the graph's gather; a memo of every
  word seen measured slower in place), then a memo of each candidate's hits (best weight
  per intent);
* word pairs only when a word that starts an intent phrase is present;
* the complexity channels, the structural signals and their regexes not at all.

It reads ``heuristic``'s compiled index and positional constants, so the rules stay one
table and ``intent_rules_fingerprint`` still names what this computes."""

from __future__ import annotations

from itertools import pairwise

from router_service import heuristic as _h
from router_service.intents import INTENTS

_Hits = tuple[tuple[int, float], ...]  # (intent column, weight)
_COLUMN = {name: i for i, name in enumerate(INTENTS)}
_K = len(INTENTS)
_CHITCHAT, _KNOWLEDGE = _COLUMN["chitchat"], _COLUMN["knowledge_qa"]
_MEMO_LIMIT = 100_000  # distinct words remembered before the memo starts over


def _intent_only(hits: _h._Hits) -> list[tuple[int, float]]:
    return [(_COLUMN[c], w) for c, w in hits if c in _COLUMN]


def _phrase_index() -> dict[tuple[str, str], tuple[tuple[tuple[tuple[str, str], ...], _Hits], ...]]:
    out = {}
    for first, entries in _h._INDEX.phrases.items():
        kept = tuple((more, tuple(_intent_only(hits))) for more, hits in entries)
        kept = tuple((more, hits) for more, hits in kept if hits)
        if kept:
            out[first] = kept
    return out


_PHRASES = _phrase_index()
_PHRASE_KEYS = frozenset(_PHRASES)
_PHRASE_STARTS = frozenset(first for first, _ in _PHRASES)
_SUBSTRINGS = tuple(
    (s, tuple(hits)) for s, raw in _h._INDEX.substrings if (hits := _intent_only(raw))
)
_ASCII_SUBSTRINGS = tuple((s, hits) for s, hits in _SUBSTRINGS if s.isascii())
_EXACT_KEYS = frozenset(w for w, hits in _h._INDEX.exact.items() if _intent_only(hits))
_STEM_KEY = _h._STEM_KEY
_STEM_PREFIXES = frozenset(
    key for key, stems in _h._INDEX.stems.items() if any(_intent_only(h) for _, h in stems)
)
_MEMO: dict[str, _Hits] = {}  # candidate word -> its intent hits


def _word_hits(word: str) -> _Hits:
    """A word -> its intent hits, one per intent at the best weight (``heuristic._hits``
    counts a word once per channel; a negative weight counts as 0, as there)."""
    hits = _h._INDEX.exact.get(word, [])
    for stem, more in _h._INDEX.stems.get(word[: _h._STEM_KEY], ()):
        if word.startswith(stem):
            hits = hits + more
    best: dict[int, float] = {}
    for column, weight in _intent_only(hits):
        best[column] = max(weight, best.get(column, 0.0))
    found = tuple(best.items())
    if len(_MEMO) >= _MEMO_LIMIT:
        _MEMO.clear()
    _MEMO[word] = found
    return found


def keyword_probs(text: str) -> list[float]:
    """Scored text (or a view of it) -> keyword-only intent probabilities, ``INTENTS`` order."""
    lowered = text.lower()
    first_line, _, rest = lowered.partition("\n")
    # A newline separates words, so the first line's words are a prefix of the text's.
    words = _h._words(first_line)
    line_words = len(words)
    if rest:
        words += _h._words(rest)
    n_words = len(words)
    head_n, head_chars, tail_is_body = _h._HEAD_WORDS, min(len(lowered), _h._TAIL_CHARS), False
    if line_words <= _h._HEAD_LINE_WORDS and rest.strip():
        head_n, head_chars = line_words, len(first_line)
        tail_is_body = first_line.rstrip().endswith(":")
    long_text = n_words > head_n + _h._TAIL_WORDS
    found = [0.0] * _K
    body = [0.0] * _K
    seen = [False] * _K  # an intent with any hit (a 0 weight included), as ``in evidence``
    head_w, tail_w, body_w = _h._HEAD, _h._TAIL, _h._BODY

    def add(hits: _Hits, in_head: bool, in_tail: bool) -> None:
        in_body = long_text and not in_head and (tail_is_body or not in_tail)
        factor = head_w if in_head else body_w if in_body else tail_w if in_tail else 1.0
        target = body if in_body else found
        for column, weight in hits:
            target[column] += weight * factor
            seen[column] = True

    head, tail = set(words[:head_n]), set(words[-_h._TAIL_WORDS :])
    unique = set(words)
    # Small tables only (a few hundred keys), so the lookups stay in cache after the graph.
    candidates = unique & _EXACT_KEYS
    stems = _STEM_PREFIXES
    candidates.update([w for w in unique if w[:_STEM_KEY] in stems])
    memo = _MEMO.get
    for word in candidates:
        hits = memo(word)
        if hits is None:
            hits = _word_hits(word)
        if hits:
            add(hits, word in head, word in tail)

    if not unique.isdisjoint(_PHRASE_STARTS):
        pairs = set(pairwise(words))
        starts = pairs & _PHRASE_KEYS
        if starts:
            head_pairs = set(pairwise(words[:head_n]))
            tail_pairs = set(pairwise(words[-_h._TAIL_WORDS - 1 :]))
            for first in starts:
                for more_pairs, phrase_hits in _PHRASES[first]:
                    if not more_pairs or all(pair in pairs for pair in more_pairs):
                        add(phrase_hits, first in head_pairs, first in tail_pairs)

    substrings = _ASCII_SUBSTRINGS if lowered.isascii() else _SUBSTRINGS
    for sub, sub_hits in substrings:
        at = lowered.find(sub)
        if at >= 0:
            add(sub_hits, at < head_chars, lowered.rfind(sub) >= len(lowered) - _h._TAIL_CHARS)
    cap = _h._BODY_CAP
    evidence = [f + (b if b < cap else cap) for f, b in zip(found, body, strict=True)]
    if lowered.endswith("?") or lowered.endswith("？"):
        evidence[_KNOWLEDGE] += 0.5
        seen[_KNOWLEDGE] = True
    return _distribution(evidence, seen, n_words, text)


def _distribution(evidence: list[float], seen: list[bool], n_words: int, text: str) -> list[float]:
    """``heuristic._intent_distribution`` on a column list (evidence 0 where not ``seen``)."""
    if seen[_CHITCHAT] and n_words > _h._LONG_CHITCHAT_WORDS:
        task = max((v for i, v in enumerate(evidence) if i != _CHITCHAT and seen[i]), default=0.0)
        if task >= _h._TASK_EVIDENCE:
            evidence[_CHITCHAT] *= 0.25  # a greeting in front of a real request
    prior = _h._PRIOR
    raw = [prior + v if v > 0.0 else prior for v in evidence]
    if max(evidence) <= 0.0:  # no rule fired
        short = n_words <= 3 and not any(ch.isdigit() for ch in text)
        raw[_CHITCHAT if short else _KNOWLEDGE] += _h._DEFAULT_MASS
    total = sum(raw)
    return [v / total for v in raw]

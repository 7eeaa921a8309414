"""Messages -> ``Scores`` from keyword rules: the baseline scorer and the fallback.

``HeuristicScorer`` needs no model file, so it decides whenever the learned model is
missing or broken. It reads only ``features.scored_text`` (bounded head + tail), so its
cost does not grow with the prompt, and it never raises.

* complexity (0-100) = length (0..25) + complex keywords (0..50) + simple keywords
  (-15..0) + structure (code, tables, JSON, several questions, lists; 0..25) + reasoning
  cues (0..20), clamped; ``strong_win_rate`` is complexity / 100 (not calibrated).
* intent_scores: weighted keyword hits per intent plus structural signals (code, stack
  traces, formulas), mixed with a small prior and normalised. A hit counts 2x in the head
  (the first words, or the first line), 1.5x in the tail and 0.6x in the body, where body
  evidence is capped per intent: the instruction outweighs a pasted document.
* ``n_tokens`` is an estimate for the whole conversation (UTF-8 bytes / 4, extrapolated
  from the scored text), because the policy's ``local_token_cap`` needs the full size.

Terms (see ``heuristic_rules``) are lowercase words, ``stem*`` prefixes, multi-word
phrases or ``~substrings`` (for scripts without spaces and symbols such as ``c++``)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise

from router_service.decision import Scores
from router_service.features import scored_text
from router_service.heuristic_rules import COMPLEX_TERMS, INTENT_TERMS, REASON_TERMS, SIMPLE_TERMS
from router_service.intents import INTENTS

logger = logging.getLogger(__name__)

COMPLEX, SIMPLE, REASON = "_complex", "_simple", "_reason"
# Where a keyword sits matters: the instruction is the first line (or first words) or the
# last words; a pasted document in between mentions many things it does not ask for.
_HEAD_WORDS = 12  # the head is the first line if it has at most _HEAD_LINE_WORDS words
_HEAD_LINE_WORDS = 30
_TAIL_WORDS = 12
_TAIL_CHARS = 80
_HEAD, _TAIL, _BODY = 2.0, 1.5, 0.6
_BODY_CAP = 3.0  # at most this much evidence per intent from the body
_PRIOR = 0.1  # every intent keeps a little mass
_DEFAULT_MASS = 1.5  # given to the default intent when no rule fires
_LONG_CHITCHAT_WORDS = 12  # greetings in front of a real request are not chitchat
_TASK_EVIDENCE = 4.0
# Bump when ``_hits`` or ``_intent_distribution`` change what they compute: a learned model
# that blends with the keyword intents records ``intent_rules_fingerprint()`` and is refused
# by a router whose rules differ (router_service.intent_blend).
_INTENT_LOGIC_VERSION = 1

_Hits = list[tuple[str, float]]


class _Index:
    """All term tables compiled into lookups: exact words, stems, phrases, substrings."""

    def __init__(self, tables: Mapping[str, Mapping[float, str]]) -> None:
        self.exact: dict[str, _Hits] = {}
        stems: dict[str, _Hits] = {}
        phrases: dict[tuple[str, ...], _Hits] = {}
        substrings: dict[str, _Hits] = {}
        for channel, by_weight in tables.items():
            for weight, terms in by_weight.items():
                for raw in terms.split("|"):
                    term = " ".join(raw.lower().split())
                    if not term:
                        continue
                    if term.startswith("~"):
                        target = substrings.setdefault(term[1:], [])
                    elif " " in term:
                        target = phrases.setdefault(tuple(term.split()), [])
                    elif term.endswith("*"):
                        if len(term) - 1 < _STEM_KEY:
                            raise ValueError(f"stem {term!r} is shorter than {_STEM_KEY} chars")
                        target = stems.setdefault(term[:-1], [])
                    else:
                        target = self.exact.setdefault(term, [])
                    target.append((channel, weight))
        # Stems are looked up by their first _STEM_KEY characters, then checked in full.
        self.stems: dict[str, list[tuple[str, _Hits]]] = {}
        for stem, hits in stems.items():
            self.stems.setdefault(stem[:_STEM_KEY], []).append((stem, hits))
        # Phrases are found by their first word pair; longer ones then check their other pairs.
        self.phrases: dict[tuple[str, str], list[tuple[tuple[tuple[str, str], ...], _Hits]]] = {}
        for words, hits in phrases.items():
            pairs = tuple(pairwise(words))
            self.phrases.setdefault(pairs[0], []).append((pairs[1:], hits))
        self.exact_keys = frozenset(self.exact)
        self.phrase_keys = frozenset(self.phrases)
        self.substrings = tuple(substrings.items())
        self.ascii_substrings = tuple((s, h) for s, h in self.substrings if s.isascii())


_STEM_KEY = 4
_INDEX = _Index(
    {**INTENT_TERMS, COMPLEX: COMPLEX_TERMS, SIMPLE: SIMPLE_TERMS, REASON: REASON_TERMS}
)

# Punctuation becomes a space; apostrophes and hyphens stay inside words ("what's", "trade-off").
_SEPARATORS = str.maketrans(
    {c: " " for c in '!"#$%&()*+,./:;<=>?@[\\]^`{|}~“”„«»¿¡…·•–—\u3002\uff0c\uff1f\uff01'}
    | {"’": "'"}
)
# The same map for ASCII text as a byte table: bytes.translate is ~9x faster than str's.
_ASCII_SEPARATORS = bytes(
    ord(_SEPARATORS[i]) if isinstance(_SEPARATORS.get(i), str) else i for i in range(256)
)
_FENCE = "```"
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |function\b|const |let |var |public |private "
    r"|#include|select .+ from|for ?\(|if ?\(|while ?\(|return\b|fn |func |package |using )",
    re.MULTILINE,
)
# Each pattern starts with a literal or a narrow class, so the regex engine scans quickly;
# the rarer signals are behind a cheap substring pre-check.
_ERROR_MARKERS = (
    "error:",
    "exception:",
    "traceback (most recent",
    "segmentation fault",
    "core dumped",
    "is not defined",
    "undefined is not",
    "exit code",
    "exit status",
    "panicked at",
)
_STACK_FRAME = re.compile(r"^[ \t]+at [\w.$<>]+\(|line \d", re.MULTILINE)
_DIGIT_OP = re.compile(r"\d\s*[-+*/^×÷=]\s*\(?\d")
_VAR_OP = re.compile(r"\^\s*\d|=\s*-?\d|f\([xyt]\)|d[xy]/d[xt]")
_MATH_SYMBOLS = frozenset("∫∑√π≤≥≠∞")
_LATEX = re.compile(r"\\(?:frac|int|sum|sqrt|lim|begin)\b|\$[^$\n]+\$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*\|", re.MULTILINE)
_JSON = re.compile(r"[{\[]\s*\"[^\"\n]{1,80}\"\s*:")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+\S", re.MULTILINE)
_FIRST_THEN = re.compile(r"\b(?:first|if)\b[^.?!\n]{0,200}?\bthen\b")


def estimate_tokens(text: str) -> int:
    """Cheap token estimate: UTF-8 bytes / 4 (English ~4 chars, CJK ~1.3 chars per token)."""
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) / 4)


def _words(text: str) -> list[str]:
    if text.isascii():
        words = text.encode("ascii").translate(_ASCII_SEPARATORS).decode("ascii").split()
    else:
        words = text.translate(_SEPARATORS).split()
    if "'" in text or "-" in text or "_" in text:
        words = [w for w in (w.strip("'-_") for w in words) if w]
    return words


def _hits(text: str) -> tuple[dict[str, float], list[str]]:
    """Lowercased bounded text -> (channel -> summed weight of distinct matched terms, words).

    Intent weights depend on where the term sits: the head (first words, or the first line
    when more text follows it) and the tail carry the instruction; the body is usually
    pasted material, so its evidence is down-weighted and capped per intent. When the head
    line ends with ":" ("Summarize this:"), everything after it is treated as body.
    Complexity channels are position-independent. Set intersections (C speed) pick the
    candidate words, so the Python-level work grows with the matches, not the text."""
    words = _words(text)
    n_words = len(words)
    first_line, _, rest = text.partition("\n")
    head_n, head_chars, tail_is_body = _HEAD_WORDS, min(len(text), _TAIL_CHARS), False
    if rest.strip():
        line_words = len(_words(first_line))
        if line_words <= _HEAD_LINE_WORDS:
            head_n, head_chars = line_words, len(first_line)
            tail_is_body = first_line.rstrip().endswith(":")
    head, tail = set(words[:head_n]), set(words[-_TAIL_WORDS:])
    long_text = n_words > head_n + _TAIL_WORDS
    found: dict[str, float] = {}
    body_found: dict[str, float] = {}

    def add(hits: Iterable[tuple[str, float]], in_head: bool, in_tail: bool) -> None:
        in_body = long_text and not in_head and (tail_is_body or not in_tail)
        factor = _HEAD if in_head else _BODY if in_body else _TAIL if in_tail else 1.0
        for channel, weight in hits:
            if channel.startswith("_"):
                found[channel] = found.get(channel, 0.0) + weight
            elif in_body:
                body_found[channel] = body_found.get(channel, 0.0) + weight * factor
            else:
                found[channel] = found.get(channel, 0.0) + weight * factor

    exact, stems = _INDEX.exact, _INDEX.stems
    unique = set(words)
    candidates = unique & _INDEX.exact_keys
    candidates.update(w for w in unique if w[:_STEM_KEY] in stems)
    for word in candidates:
        hits = exact.get(word, [])
        for stem, more in stems.get(word[:_STEM_KEY], ()):
            if word.startswith(stem):
                hits = hits + more
        if hits:
            best: dict[str, float] = {}  # a word counts once per channel, at its best weight
            for channel, weight in hits:
                best[channel] = max(weight, best.get(channel, 0.0))
            add(best.items(), word in head, word in tail)

    pairs = set(pairwise(words))
    starts = pairs & _INDEX.phrase_keys
    if starts:
        # A phrase matches when all its consecutive word pairs occur (exact for two words).
        head_pairs = set(pairwise(words[:head_n]))
        tail_pairs = set(pairwise(words[-_TAIL_WORDS - 1 :]))
        for first in starts:
            for more_pairs, hits in _INDEX.phrases[first]:
                if not more_pairs or all(pair in pairs for pair in more_pairs):
                    add(hits, first in head_pairs, first in tail_pairs)

    substrings = _INDEX.ascii_substrings if text.isascii() else _INDEX.substrings
    for sub, hits in substrings:
        at = text.find(sub)
        if at >= 0:
            add(hits, at < head_chars, text.rfind(sub) >= len(text) - _TAIL_CHARS)
    for channel, value in body_found.items():
        found[channel] = found.get(channel, 0.0) + min(value, _BODY_CAP)
    return found, words


def _structure(text: str, lowered: str, intent: dict[str, float]) -> float:
    """Structural signals -> complexity points (0..25); also adds intent evidence in place."""
    points = 0.0
    fences = text.count(_FENCE)
    code_lines = len(_CODE_LINE.findall(lowered)) if "\n" in text else 0
    braces = text.count("{") + text.count("}") + text.count(";")
    if fences >= 2 or code_lines >= 2 or braces >= 6:
        points += 10.0 if fences >= 2 or code_lines >= 4 else 6.0
        intent["coding"] = intent.get("coding", 0.0) + 1.5
        intent["debugging"] = intent.get("debugging", 0.0) + 0.5
    if any(marker in lowered for marker in _ERROR_MARKERS) or (
        ("line " in lowered or " at " in lowered) and _STACK_FRAME.search(lowered)
    ):
        intent["debugging"] = intent.get("debugging", 0.0) + 3.0
        points += 5.0
    if (
        _DIGIT_OP.search(text)
        or (("^" in text or "=" in text or "(" in text or "/" in text) and _VAR_OP.search(lowered))
        or (not text.isascii() and not _MATH_SYMBOLS.isdisjoint(text))
    ):
        intent["math"] = intent.get("math", 0.0) + 2.0
    if ("\\" in text or "$" in text) and _LATEX.search(text):
        points += 5.0
        intent["math"] = intent.get("math", 0.0) + 1.0
    if "---" in text and "|" in text and _TABLE_RULE.search(text):
        points += 8.0
    if '"' in text and _JSON.search(text):
        points += 5.0
        intent["extraction"] = intent.get("extraction", 0.0) + 0.5
    questions = text.count("?") + text.count("？")
    if questions >= 3:
        points += 7.0
    elif questions == 2:
        points += 4.0
    if "\n" in text and len(_LIST_ITEM.findall(text)) >= 3:
        points += 5.0
    return min(points, 25.0)


def _last_user_len(messages: Sequence[Mapping[str, str]]) -> int:
    """``len(features.last_user_text(messages))`` without copying the text."""
    for user_only in (True, False):
        for message in reversed(messages):
            content = message.get("content") or ""
            is_user = message.get("role") == "user"
            if (is_user or not user_only) and content and not content.isspace():
                return len(content)
    return 0


def _length_points(n_tokens: int) -> float:
    """Tokens -> 0..25 on a log scale: ~8 tokens -> 0, ~200 -> 13, 4000+ -> 25."""
    if n_tokens <= 8:
        return 0.0
    return min(25.0, 25.0 * math.log(n_tokens / 8) / math.log(500))


def _evidence(
    text: str, lowered: str, with_structure: bool = True
) -> tuple[dict[str, float], list[str], dict[str, float], float]:
    """Scored text -> (keyword hits per channel, words, intent evidence, structure points;
    0 and no structural evidence when ``with_structure`` is false)."""
    found, words = _hits(lowered)
    evidence = {name: found[name] for name in INTENTS if name in found}
    structure = _structure(text, lowered, evidence) if with_structure else 0.0
    if lowered.endswith("?") or lowered.endswith("？"):
        evidence["knowledge_qa"] = evidence.get("knowledge_qa", 0.0) + 0.5
    return found, words, evidence, structure


def _intent_distribution(
    evidence: dict[str, float], words: Sequence[str], text: str
) -> dict[str, float]:
    """Per-intent evidence -> probabilities over all ``INTENTS`` summing to 1."""
    task = max((v for k, v in evidence.items() if k != "chitchat"), default=0.0)
    if len(words) > _LONG_CHITCHAT_WORDS and task >= _TASK_EVIDENCE and "chitchat" in evidence:
        evidence["chitchat"] *= 0.25  # "Hi! Can you write ..." is a request, not small talk
    raw = {name: _PRIOR + max(evidence.get(name, 0.0), 0.0) for name in INTENTS}
    if not any(evidence.get(name, 0.0) > 0 for name in INTENTS):
        short = len(words) <= 3 and not any(ch.isdigit() for ch in text)
        raw["chitchat" if short else "knowledge_qa"] += _DEFAULT_MASS
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


def intent_rules_fingerprint(terms: Mapping[str, Mapping[float, str]] = INTENT_TERMS) -> str:
    """Intent keyword tables (the scorer's own by default) -> 16 hex digits naming what
    ``intent_probs(text, structure=False)`` computes with them: the tables, the positional
    weights and the logic version."""
    parts = {
        "version": _INTENT_LOGIC_VERSION,
        "terms": {c: {str(w): t for w, t in ts.items()} for c, ts in terms.items()},
        "weights": [_HEAD_WORDS, _HEAD_LINE_WORDS, _TAIL_WORDS, _TAIL_CHARS, _HEAD, _TAIL],
        "mass": [_BODY, _BODY_CAP, _PRIOR, _DEFAULT_MASS, _LONG_CHITCHAT_WORDS, _TASK_EVIDENCE],
        "stem_key": _STEM_KEY,
    }
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


class HeuristicScorer:
    """Keyword and structure rules -> ``Scores`` with a 0-100 ``complexity``."""

    name = "heuristic"
    version: str | None = "heuristic-1"

    def score(self, messages: Sequence[Mapping[str, str]]) -> Scores:
        try:
            return self._score(messages)
        except Exception:  # the fallback scorer must never fail a request
            logger.exception("heuristic scorer failed; returning the default scores")
            return _default_scores()

    def intent_probs(self, text: str, structure: bool = True) -> list[float]:
        """Scored text (``features.scored_text``) -> this scorer's intent probabilities in
        ``INTENTS`` order, without the complexity score. ``structure=False`` leaves out the
        structural evidence (code, stack traces, formulas, JSON) and keeps the keywords: what
        the learned scorer blends with (``router_service.intent_blend``)."""
        try:
            _, words, evidence, _ = _evidence(text, text.lower(), structure)
            probs = _intent_distribution(evidence, words, text)
        except Exception:  # never fail a request
            logger.exception("heuristic intent scoring failed; returning uniform probabilities")
            return [1.0 / len(INTENTS)] * len(INTENTS)
        return [probs[name] for name in INTENTS]

    def _score(self, messages: Sequence[Mapping[str, str]]) -> Scores:
        text = scored_text(messages)
        lowered = text.lower()
        found, words, evidence, structure = _evidence(text, lowered)
        intent_scores = _intent_distribution(evidence, words, text)

        # Extrapolate bytes-per-char from the bounded text to the full turn and conversation.
        sample_tokens = estimate_tokens(text)
        per_char = sample_tokens / len(text) if text else 0.25
        turn_tokens = max(sample_tokens, round(_last_user_len(messages) * per_char))
        total_chars = sum(len(m.get("content") or "") for m in messages)
        n_tokens = max(turn_tokens, round(total_chars * per_char))

        first_then = 6.0 if " then" in lowered and _FIRST_THEN.search(lowered) else 0.0
        complexity = (
            _length_points(turn_tokens)
            + min(found.get(COMPLEX, 0.0), 50.0)
            - min(found.get(SIMPLE, 0.0), 15.0)
            + structure
            + min(found.get(REASON, 0.0) + first_then, 20.0)
        )
        complexity = round(min(max(complexity, 0.0), 100.0), 1)
        return Scores(
            intent_scores=intent_scores,
            strong_win_rate=complexity / 100.0,
            complexity=complexity,
            n_tokens=n_tokens,
        )


def _default_scores() -> Scores:
    uniform = {name: 1.0 / len(INTENTS) for name in INTENTS}
    return Scores(intent_scores=uniform, strong_win_rate=0.5, complexity=50.0, n_tokens=0)

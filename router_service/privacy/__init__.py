"""Messages -> ``Sensitivity`` (personal data or secrets in the request?); text -> redacted.

``detect_sensitive(messages, client_flag=False, fields=request)`` scans every string of
every message (system included) and of every other request field (tools, metadata, user,
schemas, unknown fields; mapping keys and long integers too) with the regex bank in
``detectors`` (emails, phones, Luhn-valid cards, mod-97 IBANs, national ids with
checksums, API keys, PEM private keys). ``redact(text)`` replaces each finding with
``[REDACTED:<kind>]``.

Cost is linear in the text and small in practice: short texts run each triggered pattern
once; in long texts a pattern only runs in windows around its anchors (digit runs,
literal prefixes such as ``sk-`` or ``@``, keywords such as "phone"), so a 1 MB document
with sparse digits costs a few passes of ``str.find``, not 15 regex scans."""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router_service.features import content_text
from router_service.privacy.checksums import (
    card_brand,
    iban_ok,
    looks_random,
    luhn_ok,
    shannon_entropy,
)
from router_service.privacy.detectors import DETECTORS, Detector

__all__ = [
    "DETECTORS",
    "KINDS",
    "Finding",
    "Sensitivity",
    "card_brand",
    "detect_sensitive",
    "find_sensitive",
    "iban_ok",
    "looks_random",
    "luhn_ok",
    "redact",
    "redact_messages",
    "shannon_entropy",
]

KINDS: tuple[str, ...] = (
    "email",
    "phone",
    "credit_card",
    "iban",
    "national_id",
    "api_key",
    "private_key",
    "client_flag",
)

SMALL_TEXT = 4096  # below this, patterns run over the whole text (windows cost more)
_DIGIT_RUN = re.compile(r"\d+")
_WS = re.compile(r"\s")
_SNAP = 48  # how far a window edge may move to reach whitespace


@dataclass(frozen=True, slots=True)
class Sensitivity:
    sensitive: bool
    kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int
    detector: str


Window = tuple[int, int]


class _Text:
    """One text being scanned: lazily computed lower-case copy, trigger hits, windows."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.small = self.n <= SMALL_TEXT
        self._lower: str | None = None
        self._hits: dict[tuple[str, bool], bool] = {}
        self._digit_windows: list[Window] | None = None

    @property
    def lower(self) -> str:
        if self._lower is None:
            self._lower = self.text.lower()
        return self._lower

    def has(self, needle: str, ci: bool) -> bool:
        key = (needle, ci)
        hit = self._hits.get(key)
        if hit is None:
            hit = self._hits[key] = needle in (self.lower if ci else self.text)
        return hit

    def has_digit(self) -> bool:
        return any(self.has(d, False) for d in "0123456789")

    def _merge(self, spans: Iterable[Window]) -> list[Window]:
        """Sorted (lo, hi) spans -> merged, whitespace-snapped windows (the whole text
        once half of it is covered)."""
        out: list[Window] = []
        total = 0
        half = self.n // 2
        for i, (lo, hi) in enumerate(spans):
            lo, hi = self._snap(max(0, lo), min(self.n, hi))
            if out and lo <= out[-1][1]:
                prev_lo, prev_hi = out[-1]
                if hi > prev_hi:
                    total += hi - prev_hi
                    out[-1] = (prev_lo, hi)
            else:
                out.append((lo, hi))
                total += hi - lo
            # Mostly covered (overall, or densely so far): one pass over all is cheaper.
            if total > half or (i >= 256 and total > hi // 2):
                return [(0, self.n)]
        return out

    def _snap(self, lo: int, hi: int) -> Window:
        """Move window edges out to whitespace so a window never cuts a token."""
        if lo > 0:
            floor = max(0, lo - _SNAP)
            j = max(self.text.rfind(" ", floor, lo), self.text.rfind("\n", floor, lo))
            lo = j + 1 if j >= 0 else floor
        if hi < self.n:
            m = _WS.search(self.text, hi, min(self.n, hi + _SNAP))
            hi = m.start() if m else min(self.n, hi + _SNAP)
        return lo, hi

    def windows(self, det: Detector) -> list[Window]:
        """Where ``det`` has to look ([] = nowhere: its anchor is absent)."""
        whole = [(0, self.n)]
        if det.anchor == "digits":
            if not self.has_digit():
                return []
            if self.small:
                return whole
            if self._digit_windows is None:
                self._digit_windows = self._merge(
                    (m.start() - det.before, m.end() + det.after)
                    for m in _DIGIT_RUN.finditer(self.text)
                )
            return self._digit_windows
        ci = det.anchor == "keyword"
        present = [t for t in det.triggers if self.has(t, ci)]
        if not present:
            return []
        if self.small or det.anchor == "full":
            return whole
        haystack = self.lower if ci else self.text
        if len(haystack) != self.n:  # Unicode lower-casing changed lengths: no mapping
            return whole
        width = det.before + det.after
        if sum(haystack.count(t) for t in present) * width > self.n // 2:
            return whole
        return self._merge(heapq.merge(*(_occurrences(haystack, t, det) for t in present)))


def _occurrences(haystack: str, needle: str, det: Detector) -> Iterator[Window]:
    pos = haystack.find(needle)
    while pos != -1:
        yield pos - det.before, pos + len(needle) + det.after
        pos = haystack.find(needle, pos + len(needle))


def _gate(det: Detector) -> frozenset[str]:
    return _DIGIT_CHARS if det.anchor == "digits" else frozenset(t.lower() for t in det.triggers)


_DIGIT_CHARS = frozenset("0123456789")
_GATES: tuple[tuple[Detector, frozenset[str]], ...] = tuple((d, _gate(d)) for d in DETECTORS)
# Small texts: which detectors can match at all. Each trigger is one substring search in
# C (faster than one alternation regex, which tries every trigger at every position); a
# trigger inside a longer word ("tin" in "getting") only costs a detector run, never a
# finding. Any digit stands for all of them (the digit detectors' gate).
_TRIGGERS = tuple(sorted({t for _, g in _GATES for t in g} - _DIGIT_CHARS))
_ANY_DIGIT = re.compile("[0-9]")


def _triggers_in(text: str) -> set[str]:
    lower = text.lower()
    hits = {t for t in _TRIGGERS if t in lower}
    if _ANY_DIGIT.search(text) is not None:
        hits.add("0")
    return hits


def _scan(text: str, skip: frozenset[str] = frozenset(), first_only: bool = False) -> list[Finding]:
    findings: list[Finding] = []
    found: set[str] = set()
    taken: list[tuple[int, int]] = []
    small = len(text) <= SMALL_TEXT
    if small:
        hits = _triggers_in(text)
        whole = [(0, len(text))]
        has_digit = "0" in hits
    else:
        scan = _Text(text)
        has_digit = _ANY_DIGIT.search(text) is not None
    for det, gate in _GATES:
        if det.kind in skip or (first_only and det.kind in found):
            continue
        if det.needs_digit and not has_digit:
            continue
        if small:
            if gate.isdisjoint(hits):
                continue
            windows = whole
        else:
            windows = scan.windows(det)
        done = False
        for lo, hi in windows:
            pos = lo
            while (m := det.pattern.search(text, pos, hi)) is not None:
                result = det.validate(m, text)
                pos = m.end()
                if result is None:
                    continue
                if isinstance(result, tuple):
                    # A validator may report less than the match ("DE89 ... 00 DE89 ..."):
                    # look again right after what it reported.
                    pos = max(result[1], m.start() + 1)
                    result = [result]
                for span in result:
                    if first_only:
                        if any(span[0] < e and s < span[1] for s, e in taken):
                            continue  # inside a higher-priority finding (phone in a card)
                        taken.append(span)
                        done = True
                    findings.append(Finding(det.kind, span[0], span[1], det.name))
                    found.add(det.kind)
                    if done:
                        break
                if done:
                    break
            if done:
                break
    return findings


def find_sensitive(text: str) -> list[Finding]:
    """Every validated finding in ``text`` (they may overlap), in detector order."""
    return _scan(text) if text else []


def _strings(value: Any) -> Iterable[str]:
    """Every string in a JSON value, mapping keys included; integers long enough to be a
    card or account number as their digits (a client may send one as a JSON number)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if abs(value) >= 10**7:
            yield str(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str):
                yield k
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _field_texts(fields: Mapping[str, Any]) -> Iterable[str]:
    """The request's fields other than ``messages`` -> one text per field: tools, tool
    schemas, metadata, user, response_format, prediction, unknown fields..."""
    for key, value in fields.items():
        if key != "messages":
            yield "\n".join(_strings(value))


def _message_texts(message: Mapping[str, Any]) -> Iterable[str]:
    """Everything a message says: its content and any other string fields (name,
    tool-call arguments). The role is not scanned."""
    for key, value in message.items():
        if key == "role":
            continue
        yield content_text(value) if key == "content" else "\n".join(_strings(value))


def detect_sensitive(
    messages: Sequence[Mapping[str, Any]],
    *,
    client_flag: bool = False,
    fields: Mapping[str, Any] | None = None,
) -> Sensitivity:
    """Messages (all roles) and the request's other ``fields`` -> the kinds of sensitive data
    they contain. Fail closed: every client-supplied string counts, known field or not.

    A kind is looked for only until it is first found. ``client_flag`` (the client marked
    the request sensitive) makes it sensitive with kind "client_flag"."""
    found: set[str] = set()
    texts: list[Iterable[str]] = [_message_texts(m) for m in messages if isinstance(m, Mapping)]
    if fields is not None:
        texts.append(_field_texts(fields))
    for group in texts:
        for text in group:
            if text:
                found.update(f.kind for f in _scan(text, frozenset(found), first_only=True))
    kinds = tuple(k for k in KINDS if k in found or (k == "client_flag" and client_flag))
    return Sensitivity(sensitive=bool(kinds), kinds=kinds)


def _non_overlapping(findings: list[Finding]) -> list[Finding]:
    """Earliest first; at equal starts the longest; anything overlapping a kept span goes."""
    kept: list[Finding] = []
    end = -1
    for f in sorted(findings, key=lambda f: (f.start, -(f.end - f.start))):
        if f.start >= end:
            kept.append(f)
            end = f.end
    return kept


def redact(text: str) -> str:
    """Text -> the same text with each finding replaced by ``[REDACTED:<kind>]``."""
    findings = _non_overlapping(find_sensitive(text))
    if not findings:
        return text
    out: list[str] = []
    pos = 0
    for f in findings:
        out.append(text[pos : f.start])
        out.append(f"[REDACTED:{f.kind}]")
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def redact_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages -> copies with every string except ``role`` redacted (for the decision log)."""

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, Mapping):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [scrub(v) for v in value]
        return value

    return [
        {k: (v if k == "role" else scrub(v)) for k, v in dict(message).items()}
        for message in messages
    ]

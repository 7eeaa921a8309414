"""The regex bank: one ``Detector`` per kind of sensitive token, each a precompiled
pattern plus a validator that confirms or rejects every candidate.

A validator gets the match and the WHOLE text (absolute positions; patterns are run with
``pattern.finditer(text, lo, hi)`` over windows) and returns the span(s) to report, or
None. Patterns begin with a character class, then a look-behind for the boundary, so the
regex engine skips in C to the positions that can start a match.
``anchor`` tells the scanner where a match can be, so it only runs the pattern near those
places in large texts: "digits" (near digit runs), "literal" (near case-sensitive
substrings), "keyword" (near lower-case words), "full" (everywhere its trigger occurs).
Every repetition is bounded and patterns start at token boundaries: linear time."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from router_service.privacy.checksums import (
    IBAN_LENGTHS,
    bsn_ok,
    card_brand,
    de_tax_id_ok,
    iban_ok,
    looks_random,
    luhn_ok,
    ssn_ok,
)

Span = tuple[int, int]
Validator = Callable[[re.Match[str], str], Span | list[Span] | None]


@dataclass(frozen=True, slots=True)
class Detector:
    kind: str
    name: str
    pattern: re.Pattern[str]
    validate: Validator
    anchor: str  # "digits" | "literal" | "keyword" | "full"
    triggers: tuple[str, ...] = ()  # literals for literal/keyword/full anchors
    before: int = 64  # window margin before an anchor (chars)
    after: int = 64  # window margin after an anchor (chars)
    needs_digit: bool = False  # the pattern cannot match a text without a digit


def _accept(m: re.Match[str], _text: str) -> Span | None:
    return m.span()


def _before(text: str, start: int, width: int = 40) -> str:
    return text[max(0, start - width) : start].lower()


# After a context word ("phone", "SSN", ...): punctuation and up to two filler words
# ("number is", "no.:") before the value.
_FILLER = r"[^\w\n]{0,6}(?:(?:no|nr|num|number|nummer|is|was|at)\b[^\w\n]{0,4}){0,2}"


# -- email ------------------------------------------------------------------------------
_EMAIL_RE = re.compile(
    r"(?<![\w.%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w\-])"
)
_FILE_EXT = frozenset(
    ("png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "css", "scss",
     "js", "jsx", "ts", "tsx", "py", "rb", "java", "kt", "json", "yaml", "yml", "toml",
     "lock", "md", "txt", "csv", "pdf", "zip", "tgz", "gz")
)  # fmt: skip


def _email(m: re.Match[str], text: str) -> Span | None:
    value = m.group()
    if value.rsplit(".", 1)[-1].lower() in _FILE_EXT:  # icon@2x.png, logo@3x.webp
        return None
    if value.startswith("git@") and text[m.end() : m.end() + 1] == ":":  # git@host:org/repo
        return None
    return m.span()


# -- phone ------------------------------------------------------------------------------
# International (+CC / 00CC), NANP (415-555-2671, (415) 555-2671, 415.555.2671), and any
# 7-15 digit number right after a word like "phone"/"tel"/"mobile".
_PHONE_INTL_RE = re.compile(
    r"[+0](?<![\w+)\]][+0])(?:(?<=\+)|(?<=0)0)[1-9][0-9 ().\-]{6,22}[0-9]"
    r"(?![\w.\-]?\d)"
)
_PHONE_NANP_PAREN_RE = re.compile(
    r"\((?<![\w+.\-/:]\()[2-9]\d{2}\) ?[2-9]\d{2}[ .\-]\d{4}(?![\w\-]|\.\d)"
)
_PHONE_NANP_RE = re.compile(  # [1 ]415-555-2671 / 415.555.2671 (one separator kind)
    r"[1-9](?<![\w+.\-/:]\d)(?:(?<=1)[ .\-]?[2-9]\d{2}|(?<=[2-9])\d{2})([.\-])"
    r"[2-9]\d{2}\1\d{4}(?![\w\-]|\.\d)"
)
_PHONE_CONTEXT_RE = re.compile(
    r"(?i)(?<!REDACTED:)\b(?:phone|tel|telephone|mobile|cell|fax|whatsapp|handy|telefon|telefono|"
    r"t[ée]l[ée]phone|call me (?:at|on))\b"
    + _FILLER
    + r"(\+?\(?\d[\d ().\-]{5,20}\d)(?![\w\-]|\.\d)"
)


def _phone_digits_ok(value: str, lo: int, hi: int) -> bool:
    digits = sum(ch.isdigit() for ch in value)
    if not lo <= digits <= hi:
        return False
    if "  " in value or ".." in value or "--" in value or value.count("(") > 1:
        return False
    return not any(op in value for op in (" -", "- ", " .", ". "))  # arithmetic, lists


def _longest_phone_prefix(value: str, max_digits: int = 15) -> str:
    """Cut a run that swallowed a following number ("+44 20 7946 0958 4111 ...") back to
    its longest prefix, ending at a separator, with at most ``max_digits`` digits."""
    best, digits = value, 0
    for i, ch in enumerate(value):
        if ch.isdigit():
            digits += 1
            if digits > max_digits:
                return best
        elif i and value[i - 1].isdigit():
            best = value[:i]
    return value


def _phone_intl(m: re.Match[str], text: str) -> Span | None:
    value = _longest_phone_prefix(m.group())
    if not _phone_digits_ok(value, 8, 15):
        return None
    if value.count(".") == 1 and not any(ch in value for ch in " -()"):
        return None  # a signed decimal: +1234.5678
    before = text[max(0, m.start() - 2) : m.start()]
    if before[-1:] in ("-", ".") or (
        value.startswith("00") and before[-1:] == " " and before[:1].isdigit()
    ):
        return None  # "3704 0044 0532", "2223-0031-2200": a group inside a longer number
    return m.start(), m.start() + len(value)


def _phone_context(m: re.Match[str], _text: str) -> Span | None:
    return m.span(1) if _phone_digits_ok(m.group(1), 7, 15) else None


# -- payment card -----------------------------------------------------------------------
# A maximal run of digits with single " "/"-" separators; the validator looks for card
# layouts inside it, so "2024 4111 1111 1111 1111" still yields the card.
_CARD_RE = re.compile(r"\d(?<![\w\-.]\d)(?:[ \-]?\d){11,}+")  # >= 12 digits
_CARD_CONTEXT = re.compile(r"card|visa|master|amex|credit|debit|cvv|cvc|expir|payment|\bcc\b")
_NOT_CARD_CONTEXT = re.compile(
    r"order|invoice|tracking|parcel|shipment|\bref\b|reference|transaction|txn|\bid\b|#|"
    r"account|serial|isbn|ean|imei|phone|\btel\b"
)


def _is_card(digits: str) -> bool:
    return 12 <= len(digits) <= 19 and card_brand(digits) is not None and luhn_ok(digits)


# Where a card can start inside a run: a whole 12-19 digit group, or a 4-digit group
# with a card network's two-digit prefix (exact ranges: card_brand).
_CARD_START = re.compile(r"(?<!\d)(?:\d{12,19}|(?:2[2-7]|3[045-9]|[4-6]\d)\d\d)(?!\d)")
_GROUPS_AHEAD = re.compile(r"\d+(?:[ \-]\d+){0,4}")
_SEP = re.compile(r"([ \-])")


def _grouped_card_len(run: str, start: int) -> int:
    """Length of the longest card layout at ``run[start:]`` (4-4-4-4(+1..3),
    4-4-4-1..4, Amex/Diners 4-6-5 / 4-6-4; one separator kind), or 0."""
    ahead = _GROUPS_AHEAD.match(run, start)
    if ahead is None:
        return 0
    parts = _SEP.split(ahead.group())
    groups, seps = parts[0::2], parts[1::2]
    for j in range(len(groups) - 1, 1, -1):
        lengths = [len(g) for g in groups[: j + 1]]
        if not 12 <= sum(lengths) <= 19 or len(set(seps[:j])) != 1:
            continue
        fours = all(n == 4 for n in lengths[:-1]) and 1 <= lengths[-1] <= 4
        if (fours or lengths[1:] in ([6, 5], [6, 4])) and _is_card("".join(groups[: j + 1])):
            return sum(lengths) + j  # digits + separators
    return 0


def _credit_card(m: re.Match[str], text: str) -> list[Span] | None:
    run, base = m.group(), m.start()
    after = text[m.end() : m.end() + 2]
    if (
        after[:1].isalnum()
        or after[:1] in ("_", "-")
        or (after[:1] in ".," and after[1:2].isdigit())
    ):
        cut = max(run.rfind(" "), run.rfind("-"))  # the last group is glued to a word or
        run = run[:cut] if cut > 0 else ""  # a decimal part: it cannot end a card
    spans: list[Span] = []
    pos = 0
    for c in _CARD_START.finditer(run):
        start = c.start()
        if start < pos:
            continue
        length = 0
        if c.end() - start >= 12:  # bare digits: an "order id 4111..." is not a card
            if _is_card(c.group()):
                before = _before(text, base + start)
                if not _NOT_CARD_CONTEXT.search(before) or _CARD_CONTEXT.search(before):
                    length = c.end() - start
        else:
            length = _grouped_card_len(run, start)
        if length:
            spans.append((base + start, base + start + length))
            pos = start + length
    return spans or None


# -- IBAN -------------------------------------------------------------------------------
_IBAN_RE = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}\b")


def _iban(m: re.Match[str], _text: str) -> Span | None:
    value = m.group()
    length = IBAN_LENGTHS.get(value[:2])
    if length is None:
        return None
    # The IBAN is the first ``length`` alphanumerics; an upper-case word after it
    # ("... 00 IS MINE") may have been swallowed by the pattern.
    count, end = 0, 0
    for i, ch in enumerate(value):
        if ch != " ":
            count += 1
            if count == length:
                end = i + 1
                break
    if count < length:
        return None
    if value[end : end + 1].isalnum():
        return None  # glued to more characters: a longer code, not this IBAN
    return (m.start(), m.start() + end) if iban_ok(value[:end].replace(" ", "")) else None


# -- national ids -----------------------------------------------------------------------
_SSN_RE = re.compile(r"(\d(?<![\w\-.]\d)\d{2})([- ])(\d{2})\2(\d{4})(?![\w\-]|\.\d)")
_SSN_CONTEXT_RE = re.compile(r"(?i)\b(?:ssn|social security)\b" + _FILLER + r"(\d{9})\b")
_BSN_RE = re.compile(
    r"(?i)\b(?:bsn|burgerservicenummer|sofinummer|sofi-nummer)\b"
    + _FILLER
    + r"(\d{4}[. ]?\d{2}[. ]?\d{3}|\d{8,9})\b"
)
_DE_TAX_RE = re.compile(
    r"(?i)\b(?:steuer[- ]?id(?:entifikationsnummer)?|idnr|steuerliche identifikationsnummer|"
    r"tax[- ]?id|tin)\b" + _FILLER + r"(\d{2} ?\d{3} ?\d{3} ?\d{3})\b"
)
_NINO_RE = re.compile(
    r"[A-CEGHJ-PR-TW-Z](?<!\w[A-Z])[A-CEGHJ-NPR-TW-Z]"
    r"( ?)\d{2}\1\d{2}\1\d{2}\1[A-D]\b"
)


_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})


def _nino(m: re.Match[str], _text: str) -> Span | None:
    return None if m.group()[:2] in _NINO_BAD_PREFIXES else m.span()


def _ssn(m: re.Match[str], text: str) -> Span | None:
    if not ssn_ok(m.group(1), m.group(3), m.group(4)):
        return None
    if m.group(2) == " " and not re.search(r"ssn|social", _before(text, m.start())):
        return None  # space-separated 3-2-4 is common in tables; needs context
    return m.span()


def _ssn_context(m: re.Match[str], _text: str) -> Span | None:
    d = m.group(1)
    return m.span(1) if ssn_ok(d[:3], d[3:5], d[5:]) else None


def _bsn(m: re.Match[str], _text: str) -> Span | None:
    return m.span(1) if bsn_ok(re.sub(r"\D", "", m.group(1))) else None


def _de_tax(m: re.Match[str], _text: str) -> Span | None:
    return m.span(1) if de_tax_id_ok(m.group(1).replace(" ", "")) else None


# -- secrets ----------------------------------------------------------------------------
_KEY_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("anthropic", "sk-ant-", r"\bsk-ant-[a-z]{2,10}\d{0,3}-[A-Za-z0-9_\-]{20,300}"),
    ("openai", "sk-", r"(?<![\w\-])sk-(?!ant-)(?:[a-z]{2,10}-)?[A-Za-z0-9_\-]{20,300}"),
    ("stripe", "_live_", r"\b(?:sk|rk|pk)_live_[A-Za-z0-9]{16,200}"),
    ("aws", "AKIA ASIA ABIA ACCA", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    ("github", "ghp_ gho_ ghu_ ghs_ ghr_", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
    ("github_pat", "github_pat_", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
    ("slack", "xox", r"\bxox[abposre]-[A-Za-z0-9\-]{10,250}"),
    ("google", "AIza", r"\bAIza[0-9A-Za-z_\-]{35}(?![\w\-])"),
    (
        "jwt",
        "eyJ",
        r"\beyJ[A-Za-z0-9_\-]{8,2048}\.eyJ[A-Za-z0-9_\-]{8,4096}\.[A-Za-z0-9_\-]{8,2048}",
    ),
)


def _key_random(m: re.Match[str], _text: str) -> Span | None:
    return m.span() if looks_random(m.group(), 3.0) else None


_SECRET_WORDS = ("key", "secret", "token", "bearer", "password", "passwd", "pwd")
_GENERIC_SECRET_RE = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:api[_\-]?key|apikey|x-api-key|secret(?:[_\-]?key)?|"
    r"client[_\-]?secret|access[_\-]?token|auth[_\-]?token|bearer|token|password|passwd|pwd)"
    r"[\"']?\s{0,3}(?:[:=]|=>|\s)\s{0,3}[\"']?([^\s\"'`,;<>(){}\[\]]{16,512})"
)


def _generic_secret(m: re.Match[str], _text: str) -> Span | None:
    token = m.group(1).rstrip(".=")
    if not looks_random(token, 3.5):
        return None
    return m.start(1), m.start(1) + len(token)


_PEM_BEGIN_RE = re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,4}PRIVATE KEY(?: BLOCK)?-----")


def _private_key(m: re.Match[str], text: str) -> Span | None:
    """From BEGIN to the matching END line; without one, to the end of the base64 body."""
    end = text.find("-----END", m.end())
    if end != -1:
        close = text.find("-----", end + 8)
        return m.start(), (close + 5 if close != -1 else len(text))
    blank = text.find("\n\n", m.end())
    return m.start(), (blank if blank != -1 else len(text))


DETECTORS: tuple[Detector, ...] = (
    Detector("private_key", "pem", _PEM_BEGIN_RE, _private_key, "full", ("PRIVATE KEY",)),
    *(
        Detector(
            "api_key",
            name,
            re.compile(rx),
            _key_random,
            "literal",
            tuple(trig.split()),
            before=16,
            after=4200 if name == "jwt" else 320,
        )
        for name, trig, rx in _KEY_PATTERNS
    ),
    Detector(
        "api_key",
        "generic_secret",
        _GENERIC_SECRET_RE,
        _generic_secret,
        "keyword",
        _SECRET_WORDS,
        before=24,
        after=560,
    ),
    Detector("email", "email", _EMAIL_RE, _email, "literal", ("@",), before=80, after=300),
    Detector("iban", "iban", _IBAN_RE, _iban, "digits"),
    Detector("credit_card", "card", _CARD_RE, _credit_card, "digits"),
    Detector("national_id", "us_ssn", _SSN_RE, _ssn, "digits"),
    Detector(
        "national_id",
        "us_ssn_ctx",
        _SSN_CONTEXT_RE,
        _ssn_context,
        "keyword",
        ("ssn", "social security"),
        before=8,
        after=48,
        needs_digit=True,
    ),
    Detector(
        "national_id",
        "nl_bsn",
        _BSN_RE,
        _bsn,
        "keyword",
        ("bsn", "burgerservice", "sofi"),
        before=8,
        after=64,
        needs_digit=True,
    ),
    Detector(
        "national_id",
        "de_tax_id",
        _DE_TAX_RE,
        _de_tax,
        "keyword",
        ("steuer", "idnr", "tax", "tin"),
        before=8,
        after=96,
        needs_digit=True,
    ),
    Detector("national_id", "uk_nino", _NINO_RE, _nino, "digits"),
    Detector("phone", "phone_intl", _PHONE_INTL_RE, _phone_intl, "digits"),
    Detector("phone", "phone_nanp", _PHONE_NANP_RE, _accept, "digits"),
    Detector("phone", "phone_nanp_paren", _PHONE_NANP_PAREN_RE, _accept, "digits"),
    Detector(
        "phone",
        "phone_ctx",
        _PHONE_CONTEXT_RE,
        _phone_context,
        "keyword",
        ("phone", "tel", "mobile", "cell", "fax", "whatsapp", "handy", "call me"),
        before=8,
        after=64,
        needs_digit=True,
    ),
)

"""router_service.privacy: true positives, false positives, redaction, message coverage."""

from __future__ import annotations

import pytest

from router_service.privacy import Sensitivity, detect_sensitive, find_sensitive, redact


def kinds_of(text: str) -> tuple[str, ...]:
    return detect_sensitive([{"role": "user", "content": text}]).kinds


# -- true positives ---------------------------------------------------------------------

CARDS = [
    "4111111111111111",  # visa
    "4012888888881881",
    "5555555555554444",  # mastercard
    "2223003122003222",  # mastercard 2-series
    "378282246310005",  # amex
    "6011111111111117",  # discover
    "3530111333300000",  # jcb
    "30569309025904",  # diners (14 digits)
    "6200000000000005",  # unionpay
    "6759649826438453",  # maestro
]


@pytest.mark.parametrize("number", CARDS)
def test_cards_bare_and_grouped(number: str) -> None:
    assert kinds_of(f"my card is {number}, thanks") == ("credit_card",)
    if len(number) == 16:
        grouped = " ".join(number[i : i + 4] for i in range(0, 16, 4))
        dashed = grouped.replace(" ", "-")
        assert kinds_of(f"card: {grouped}") == ("credit_card",)
        assert kinds_of(f"{dashed} exp 12/27") == ("credit_card",)


def test_amex_grouping_4_6_5() -> None:
    assert kinds_of("amex 3782 822463 10005") == ("credit_card",)


IBANS = [
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "CH9300762011623852957",
    "BE68539007547034",
    "IT60X0542811101000000123456",
]


@pytest.mark.parametrize("iban", IBANS)
def test_ibans_compact_and_grouped(iban: str) -> None:
    assert kinds_of(f"please transfer to {iban} today") == ("iban",)
    grouped = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    assert redact(f"IBAN: {grouped}.") == "IBAN: [REDACTED:iban]."


def test_iban_followed_by_uppercase_words_is_cut_at_its_length() -> None:
    assert redact("DE89 3704 0044 0532 0130 00 IS MINE") == "[REDACTED:iban] IS MINE"


@pytest.mark.parametrize(
    "text",
    [
        "mail john.doe+filter@example.co.uk now",
        "Contact: ANNA_SMITH@Mail.Example.org",
        "x@y.io",
    ],
)
def test_emails(text: str) -> None:
    assert kinds_of(text) == ("email",)


@pytest.mark.parametrize(
    "text",
    [
        "call +44 20 7946 0958",
        "+1 (415) 555-2671",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "1-800-555-1234",
        "0049 30 1234567",
        "+33 1 23 45 67 89",
        "+4915123456789",
        "Phone: 020 7946 0958",
        "mobile no. 06-12345678",
        "Telefon: 030 1234567",
    ],
)
def test_phones(text: str) -> None:
    assert kinds_of(text) == ("phone",)


@pytest.mark.parametrize(
    "text",
    [
        "SSN 536-22-1234",
        "my social security number is 536221234",
        "ssn: 536 22 1234",
        "BSN 111222333",
        "burgerservicenummer: 1234.56.782",
        "Steuer-ID 86095742719",
        "steuerliche Identifikationsnummer 47 036 892 816",
        "NINO AB 12 34 56 C",
        "national insurance AB123456C",
    ],
)
def test_national_ids(text: str) -> None:
    assert kinds_of(text) == ("national_id",)


KEYS = [
    "sk-" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ3k",
    "sk-proj-" + "Xy7_kL9-mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ3kL5mN7p",
    "sk-ant-api03-" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ3k-Q",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5b12",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@pytest.mark.parametrize("key", KEYS)
def test_api_keys(key: str) -> None:
    text = f"here is my key {key} please use it"
    assert kinds_of(text) == ("api_key",)
    out = redact(text)
    assert key not in out and "[REDACTED:api_key]" in out


@pytest.mark.parametrize(
    "text",
    [
        "api_key = 'f3a9c1e7b2d84f6a9e0c7b1d5e8f2a4c'",
        'OPENAI_API_KEY="Zq8xR2mT5vB9nK3wL7pY1cF6"',
        "Authorization: Bearer 9fK2xQ7mZ1vR8tY3bN6wL4pH",
        "client_secret: Qm9vX2J5ZV9oYXJkX3NlY3JldDEyMw==",
        "password=Tr0ub4dor&3xK9mZ2qW7vR",
    ],
)
def test_generic_high_entropy_secrets(text: str) -> None:
    assert kinds_of(text) == ("api_key",)


PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA7bq2Xw1XkKZlZ5l0n7kqQ6jB9m2r0yT0bW6s8b8pY6q0pJ9f\n"
    "-----END RSA PRIVATE KEY-----"
)


def test_private_key_block_is_redacted_whole() -> None:
    text = f"config:\n{PEM}\nthanks"
    assert kinds_of(text) == ("private_key",)
    assert redact(text) == "config:\n[REDACTED:private_key]\nthanks"


@pytest.mark.parametrize(
    "header",
    ["-----BEGIN PRIVATE KEY-----", "-----BEGIN OPENSSH PRIVATE KEY-----",
     "-----BEGIN ENCRYPTED PRIVATE KEY-----", "-----BEGIN PGP PRIVATE KEY BLOCK-----"],
)  # fmt: skip
def test_private_key_headers_without_end(header: str) -> None:
    text = f"{header}\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n\nwhat is this?"
    assert kinds_of(text) == ("private_key",)
    assert redact(text) == "[REDACTED:private_key]\n\nwhat is this?"


# -- false positives ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "The meeting is on 2024-01-15 at 10:30.",
        "from 1999 to 2024 the population grew to 8,000,000,000",
        "upgrade from v10.15.7 to Python 3.11.7 and numpy 1.26.4",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
        "timestamp 1700000000000 ms",
        "Call 911 or go to room 101",
        "use scikit-learn and sk-learn-style estimators in your task-runner",
        "ISBN 978-3-16-148410-0",
        "lat 52.5200, lon 13.4050, alt 34",
        "price $1,299.99 incl. tax",
        "MAC 00:1B:44:11:3A:B7, IP 192.168.100.200",
        "2+2=4 and 3*7=21 and x = +123.45 - 678.90",
        "Dimensions 1920x1080 @ 60Hz",
        "tel aviv is a city; my cell phone is broken",
        "The token count was 4096 tokens",
        "password must be at least 12 characters",
        "api_key = os.environ['OPENAI_API_KEY']",
        "secret: my_super_secret_value_here",
        "decorate with @property or @functools.lru_cache",
        "icon@2x.png and logo@3x.webp",
        "git clone git@github.com:org/repo.git",
        "user@localhost",
        "SSN format is XXX-XX-XXXX; 000-12-3456 and 666-12-3456 are never issued",
        "123-45-0000 and 123-00-4567 are invalid too",
        "BSN 123456789",  # fails the 11-test
        "Steuer-ID 86095742710",  # bad check digit
        "QQ123456C is the placeholder NINO, BG123456A is not allocated",
        "IBAN DE89370400440532013001",  # bad mod-97
        "0x7fffffffffffffff",
        "100000000000000000000",
        "lorem ipsum dolor sit amet",
        "",
    ],
)
def test_not_sensitive(text: str) -> None:
    assert kinds_of(text) == ()
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "order id 4111111111111111 shipped",
        "invoice #5555555555554444",
        "tracking number 6011111111111117",
    ],
)
def test_bare_luhn_numbers_labelled_as_ids_are_not_cards(text: str) -> None:
    assert kinds_of(text) == ()


def test_card_failing_luhn_is_not_a_card() -> None:
    assert kinds_of("card 4111111111111112") == ()
    assert kinds_of("card 4111 1111 1111 1112") == ()


def test_odd_grouping_is_not_a_card() -> None:
    assert kinds_of("41 1111 1111 1111 11") == ()  # Luhn-valid digits, not a card layout


# -- messages, flags, redaction -----------------------------------------------------------


def test_every_role_and_part_is_scanned() -> None:
    messages = [
        {"role": "system", "content": "Escalate to ops@example.com"},
        {"role": "user", "content": [{"type": "text", "text": "card 4111 1111 1111 1111"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": '{"ssn": "536-22-1234"}'}}
        ]},
        {"role": "user", "content": "nothing here"},
    ]  # fmt: skip
    result = detect_sensitive(messages)
    assert result == Sensitivity(True, ("email", "credit_card", "national_id"))


def test_client_flag_alone_and_combined() -> None:
    clean = [{"role": "user", "content": "hello"}]
    assert detect_sensitive(clean) == Sensitivity(False, ())
    assert detect_sensitive(clean, client_flag=True) == Sensitivity(True, ("client_flag",))
    mail = [{"role": "user", "content": "a@b.com"}]
    assert detect_sensitive(mail, client_flag=True).kinds == ("email", "client_flag")


def test_malformed_messages_do_not_crash() -> None:
    messages = [{"role": "user"}, "not a message", {"role": "user", "content": 12345}]
    assert detect_sensitive(messages) == Sensitivity(False, ())  # type: ignore[list-item]


def test_redact_several_kinds_keeps_the_rest() -> None:
    text = "Hi, I'm Ann (ann@example.com, +44 20 7946 0958). Card 4111-1111-1111-1111."
    assert redact(text) == (
        "Hi, I'm Ann ([REDACTED:email], [REDACTED:phone]). Card [REDACTED:credit_card]."
    )


def test_redact_is_idempotent() -> None:
    text = "mail a@b.com key AKIAIOSFODNN7EXAMPLE ssn 536-22-1234"
    once = redact(text)
    assert redact(once) == once
    assert find_sensitive(once) == []


def test_findings_have_spans_of_the_token() -> None:
    text = "x a@b.com y"
    (f,) = find_sensitive(text)
    assert (f.kind, text[f.start : f.end]) == ("email", "a@b.com")


# -- large inputs: everything is scanned -------------------------------------------------


def test_secret_at_the_end_of_a_megabyte_is_found() -> None:
    filler = "lorem ipsum dolor sit amet, consectetur adipiscing elit 2024. " * 17_000
    text = filler + " my email is late@example.com"
    assert len(text) > 1_000_000
    assert kinds_of(text) == ("email",)
    assert redact(text).endswith("my email is [REDACTED:email]")


def test_large_digit_heavy_text_keeps_far_apart_findings() -> None:
    rows = "\n".join(
        f"{i},{i * 7919 % 100003},{i * 31}.5,2024-01-{i % 28 + 1:02d}" for i in range(40_000)
    )
    text = "card 4111 1111 1111 1111\n" + rows + "\nIBAN DE89370400440532013000\n" + rows
    assert set(kinds_of(text)) == {"credit_card", "iban"}
    assert redact(text).count("[REDACTED:") == 2


def test_keyword_far_from_number_in_large_text() -> None:
    text = ("phone " + "x" * 200 + " ") * 5_000 + "call me at 555 0100 123"
    assert kinds_of(text) == ("phone",)


@pytest.mark.parametrize(
    "text",
    [
        "1" * 1_000_000,
        "1234 " * 200_000,
        "+1 " * 300_000,
        "a@b " * 250_000,
        "AB12 " * 200_000,
        "token = " * 120_000,
        "-----BEGIN PRIVATE KEY-----" * 30_000,
    ],
)
def test_adversarial_megabyte_inputs_complete(text: str) -> None:
    result = detect_sensitive([{"role": "user", "content": text}])
    assert isinstance(result, Sensitivity)


PLANTED = [
    ("ann@example.com", "email"),
    ("4111 1111 1111 1111", "credit_card"),
    ("DE89 3704 0044 0532 0130 00", "iban"),
    ("+44 20 7946 0958", "phone"),
    ("AKIAIOSFODNN7EXAMPLE", "api_key"),
    ("536-22-1234", "national_id"),
]


@pytest.mark.parametrize("seed", range(5))
def test_large_text_windows_find_what_small_texts_find(seed: int) -> None:
    """Long texts are scanned in windows around anchors; planted secrets anywhere in
    80 kB of filler (with numbers and keywords) are all found and nothing else is."""
    import random

    rng = random.Random(seed)
    filler = ["lorem", "ipsum", "2024", "v1.2.3", "order", "key", "token", "42", "x" * 30, "\n"]
    parts: list[str] = []
    expected: list[str] = []
    size = 0
    while size < 80_000:
        if rng.random() < 0.01:
            secret, kind = rng.choice(PLANTED)
            parts.append(secret)
            expected.append(f"[REDACTED:{kind}]")
        else:
            secret = rng.choice(filler)
            parts.append(secret)
            expected.append(secret)
        size += len(secret) + 2
    # "; " keeps neighbours apart ("+44 20 7946 0958 42" would rightly be one number)
    assert redact("; ".join(parts)) == "; ".join(expected)

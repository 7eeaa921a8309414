"""router_service.privacy: property tests of the checksums and of redaction."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.privacy import detect_sensitive, find_sensitive, luhn_ok, redact
from router_service.privacy.checksums import bsn_ok, iban_ok


def luhn_complete(prefix: str) -> str:
    for check in "0123456789":
        if luhn_ok(prefix + check):
            return prefix + check
    raise AssertionError("unreachable: one check digit always works")


digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=14, max_size=14))
def test_every_luhn_valid_visa_is_detected(body: str) -> None:
    number = luhn_complete("4" + body)
    grouped = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    kinds = detect_sensitive([{"role": "user", "content": f"pay with {grouped} please"}]).kinds
    assert kinds == ("credit_card",)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=16, max_size=16))
def test_sixteen_digits_failing_luhn_are_never_cards(number: str) -> None:
    if luhn_ok(number):
        number = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not luhn_ok(number)
    findings = find_sensitive(f"reference {number} attached")
    assert all(f.kind != "credit_card" for f in findings)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=16, max_size=16))
def test_luhn_detects_every_single_digit_error(number: str) -> None:
    valid = luhn_complete(number[:-1])
    for i in range(len(valid)):
        for d in "0123456789":
            if d != valid[i]:
                assert not luhn_ok(valid[:i] + d + valid[i + 1 :])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["DE89370400440532013000", "GB82WEST12345698765432"]),
       st.integers(min_value=4, max_value=21), digits)  # fmt: skip
def test_iban_mod97_catches_single_substitutions(iban: str, pos: int, d: str) -> None:
    pos = min(pos, len(iban) - 1)
    changed = iban[:pos] + d + iban[pos + 1 :]
    assert iban_ok(changed) == (changed == iban)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_bsn_eleven_test_matches_definition(number: str) -> None:
    weights = [9, 8, 7, 6, 5, 4, 3, 2, -1]
    expected = sum(w * int(c) for w, c in zip(weights, number, strict=True)) % 11 == 0
    assert bsn_ok(number) == (expected and number != "000000000")


words = st.sampled_from(
    ["hello", "the", "model", "2024", "v1.2.3", "costs", "$12.50", "call", "at", "id", "\n"]
)
secrets = st.sampled_from(
    ["ann@example.com", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE", "+44 20 7946 0958",
     "DE89 3704 0044 0532 0130 00", "536-22-1234"]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(words, secrets), max_size=30))
def test_redact_removes_every_secret_and_only_secrets(tokens: list[str]) -> None:
    text = " ".join(tokens)
    out = redact(text)
    for token in tokens:
        if token in ("ann@example.com", "AKIAIOSFODNN7EXAMPLE", "536-22-1234"):
            assert token not in out
    planted = any(t in tokens for t in ("ann@example.com", "4111 1111 1111 1111",
                                        "AKIAIOSFODNN7EXAMPLE", "+44 20 7946 0958",
                                        "DE89 3704 0044 0532 0130 00", "536-22-1234"))  # fmt: skip
    assert (out != text) == planted
    assert redact(out) == out

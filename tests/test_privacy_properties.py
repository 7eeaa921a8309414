"""router_service.privacy: property tests of the checksums, of redaction, and that the
Responses and Messages APIs' scans find a secret in any of their fields (and nothing in
clean ones)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.messages_api.protocol import parse_messages
from router_service.messages_api.request import chat_body as messages_chat_body
from router_service.messages_api.request import scan_fields as messages_scan
from router_service.privacy import detect_sensitive, find_sensitive, luhn_ok, redact
from router_service.privacy.checksums import bsn_ok, iban_ok
from router_service.responses_api.protocol import parse_responses
from router_service.responses_api.request import chat_body, scan_fields


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


# -- the Responses API: every text field of its body is scanned ---------------------------
def _responses_slots(secret: str) -> list[dict]:
    """Responses bodies, each carrying ``secret`` in a different field."""
    user = {"role": "user", "content": "hello"}
    return [
        {"instructions": f"note {secret}", "input": "hello"},
        {"input": f"pay {secret}"},
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": secret}]}]},
        {"input": [{"role": "assistant", "content": [{"type": "output_text", "text": secret}]}]},
        {"input": [user, {"type": "function_call", "call_id": "c", "name": "f",
                          "arguments": f'{{"x": "{secret}"}}'}]},
        {"input": [{"type": "function_call_output", "call_id": "c", "output": secret}]},
        {"input": [{"type": "function_call_output", "call_id": "c",
                    "output": [{"type": "input_text", "text": secret}]}]},
        {"input": [{"role": "user", "content": [{"type": "input_file", "filename": secret,
                                                 "file_data": "data:application/pdf;base64,AA"}]}]},
        {"input": [user, {"type": "message", "role": "user", "content": "x", "note": secret}]},
        {"input": "hello", "tools": [{"type": "function", "name": "f", "description": secret}]},
        {"input": "hello", "tools": [{"type": "function", "name": "f", "parameters": {
            "type": "object", "properties": {"a": {"description": secret}}}}]},
        {"input": "hello", "text": {"format": {"type": "json_schema", "name": "s",
                                               "schema": {"title": secret}}}},
        {"input": "hello", "metadata": {"k": secret}},
        {"input": "hello", "metadata": {secret: "v"}},
        {"input": "hello", "user": secret},
        {"input": "hello", "vendor_extra": [{"deep": secret}]},
    ]  # fmt: skip


def _responses_sensitivity(body: dict):
    """What ``POST /v1/responses`` scans: the chat messages it sends upstream and every
    field of the client's body (``run.forward`` with ``request.scan_fields``)."""
    chat = chat_body(parse_responses(body), body)
    return detect_sensitive(chat["messages"], fields=scan_fields(body))


@settings(max_examples=200, deadline=None)
@given(secrets, st.integers(min_value=0, max_value=15))
def test_a_secret_in_any_responses_field_is_found(secret: str, slot: int) -> None:
    body = {"model": "auto", **_responses_slots(secret)[slot]}
    assert _responses_sensitivity(body).sensitive, (slot, secret)


@settings(max_examples=100, deadline=None)
@given(st.lists(words, min_size=1, max_size=12), st.integers(min_value=0, max_value=15))
def test_responses_fields_without_secrets_stay_clean(tokens: list[str], slot: int) -> None:
    body = {"model": "auto", **_responses_slots(" ".join(tokens))[slot]}
    assert not _responses_sensitivity(body).sensitive, (slot, tokens)


# -- the Messages API: every text field of its body is scanned ----------------------------
def _messages_slots(secret: str) -> list[dict]:
    """Messages bodies, each carrying ``secret`` in a different field."""
    hi = {"role": "user", "content": "hello"}
    use = {"type": "tool_use", "id": "t", "name": "f", "input": {"x": secret}}
    return [
        {"system": f"note {secret}", "messages": [hi]},
        {"system": [{"type": "text", "text": secret}], "messages": [hi]},
        {"messages": [{"role": "user", "content": f"pay {secret}"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": secret}]}]},
        {"messages": [hi, {"role": "assistant", "content": [{"type": "text", "text": secret}]}]},
        {"messages": [hi, {"role": "assistant", "content": [use]}]},
        {"messages": [hi, {"role": "assistant", "content": [{"type": "thinking",
                                                             "thinking": secret}]}]},
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                    "content": secret}]}]},
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                    "content": [{"type": "text",
                                                                 "text": secret}]}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {
            "type": "url", "url": f"https://x.test/?q={secret}"}}]}]},
        {"messages": [hi], "tools": [{"name": "f", "description": secret,
                                      "input_schema": {"type": "object"}}]},
        {"messages": [hi], "tools": [{"name": "f", "input_schema": {
            "type": "object", "properties": {"a": {"description": secret}}}}]},
        {"messages": [hi], "metadata": {"user_id": secret}},
        {"messages": [hi], "stop_sequences": [secret]},
        {"messages": [hi], "vendor_extra": [{"deep": secret}]},
    ]  # fmt: skip


def _messages_sensitivity(body: dict):
    """What ``POST /v1/messages`` scans: the chat messages it sends upstream and every
    field of the client's body (``run.forward`` with ``messages_api.request.scan_fields``)."""
    call = parse_messages(body)
    return detect_sensitive(messages_chat_body(call)["messages"], fields=messages_scan(body))


@settings(max_examples=200, deadline=None)
@given(secrets, st.integers(min_value=0, max_value=14))
def test_a_secret_in_any_messages_field_is_found(secret: str, slot: int) -> None:
    body = {"model": "auto", "max_tokens": 16, **_messages_slots(secret)[slot]}
    assert _messages_sensitivity(body).sensitive, (slot, secret)


@settings(max_examples=100, deadline=None)
@given(st.lists(words, min_size=1, max_size=12), st.integers(min_value=0, max_value=14))
def test_messages_fields_without_secrets_stay_clean(tokens: list[str], slot: int) -> None:
    body = {"model": "auto", "max_tokens": 16, **_messages_slots(" ".join(tokens))[slot]}
    assert not _messages_sensitivity(body).sensitive, (slot, tokens)

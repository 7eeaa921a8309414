"""HeuristicScorer: invariants on any input, intent rules, complexity and tiers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.decision import Scorer
from router_service.features import budget_text, messages_from_payload
from router_service.heuristic import HeuristicScorer, estimate_tokens
from router_service.heuristic_rules import INTENT_TERMS
from router_service.intents import INTENTS
from router_service.routing import RoutingPolicy, decide

SCORER = HeuristicScorer()


def score(prompt: str):
    return SCORER.score(messages_from_payload(prompt))


def check_invariants(scores) -> None:
    assert list(scores.intent_scores) == list(INTENTS)
    assert all(v > 0 for v in scores.intent_scores.values())
    assert math.isclose(sum(scores.intent_scores.values()), 1.0, rel_tol=1e-9)
    assert scores.complexity is not None and 0.0 <= scores.complexity <= 100.0
    assert scores.strong_win_rate == pytest.approx(scores.complexity / 100.0)
    assert scores.n_tokens >= 0


def test_is_a_scorer() -> None:
    scorer: Scorer = SCORER
    assert scorer.name == "heuristic"
    assert scorer.version == "heuristic-1"


def test_rule_tables_cover_exactly_the_intents() -> None:
    assert set(INTENT_TERMS) == set(INTENTS)


@pytest.mark.parametrize(
    ("prompt", "intent"),
    [
        ("hey, how are you doing today?", "chitchat"),
        ("thanks a lot, bye!", "chitchat"),
        ("What is the boiling point of water at high altitude?", "knowledge_qa"),
        ("why do cats purr", "knowledge_qa"),
        (
            "Summarize the following meeting notes in three bullet points:\n\nWe met...",
            "summarization",
        ),
        ("tl;dr this article for me please", "summarization"),
        ("Translate 'where is the train station' into Japanese", "translation"),
        ("how do you say good luck in italian", "translation"),
        ("Rewrite this paragraph to sound more professional: hey guys, we r late", "rewriting"),
        ("Proofread my cover note and fix typos", "rewriting"),
        ("Extract all email addresses and phone numbers from this text: ...", "extraction"),
        ("Classify the sentiment of each tweet as positive, negative or neutral", "classification"),
        ("Write a haiku about the first snow", "creative_writing"),
        ("Draft a short story about a lighthouse keeper who finds a map", "creative_writing"),
        ("Give me 10 ideas for a team-building event", "brainstorming"),
        ("Brainstorm names for a bakery that sells only croissants", "brainstorming"),
        ("Act as a medieval innkeeper and stay in character while I ask you questions", "roleplay"),
        ("Pretend you are my job interviewer for a nursing position", "roleplay"),
        ("Write a Python function that merges two sorted lists", "coding"),
        ("SQL query to get the top 5 customers by revenue", "coding"),
        ("I get a KeyError when I run my script, how do I fix this bug?", "debugging"),
        ("Traceback (most recent call last):\n  File 'a.py', line 3\nValueError: bad", "debugging"),
        ("Solve for x: 3x + 7 = 22", "math"),
        ("What is the derivative of x^3 * sin(x)?", "math"),
        (
            "A farmer has to cross a river with a wolf, a goat and a cabbage. Solve the puzzle.",
            "reasoning",
        ),
        ("Should I rent or buy a flat? Walk me through the trade-offs.", "reasoning"),
    ],
)
def test_intent_rules(prompt: str, intent: str) -> None:
    scores = score(prompt)
    check_invariants(scores)
    assert scores.intent == intent, sorted(scores.intent_scores.items(), key=lambda kv: -kv[1])[:3]


@pytest.mark.parametrize(
    ("prompt", "intent"),
    [
        ("Übersetze bitte diesen Satz ins Englische: Ich habe Hunger", "translation"),
        ("Traduce al inglés: me gusta la playa", "translation"),
        ("Peux-tu traduire cette phrase en anglais ?", "translation"),
        ("请把这句话翻译成英文：我爱你", "translation"),
        ("Fasse diesen Artikel kurz zusammen: Die Regierung hat heute ...", "summarization"),
        ("Puedes resumir este texto en dos frases: ...", "summarization"),
        ("Résumez ce document en trois points", "summarization"),
        ("总结一下这篇文章的主要内容", "summarization"),
        ("Hola, ¿qué tal?", "chitchat"),
        ("こんにちは！", "chitchat"),
    ],
)
def test_multilingual_rules(prompt: str, intent: str) -> None:
    assert score(prompt).intent == intent


def test_no_rule_fires_gives_a_sensible_default() -> None:
    short = score("zzz qqq")
    assert short.intent == "chitchat"
    longer = score("the mitochondria of the blue whale compared in size")
    assert longer.intent in {"knowledge_qa", "reasoning"}
    check_invariants(short)
    check_invariants(longer)


def test_instruction_outweighs_pasted_content() -> None:
    body = "The server threw an error and the code crashed; debug logs show a bug. " * 20
    scores = score(f"Summarize this incident report in two sentences:\n\n{body}")
    assert scores.intent == "summarization"


def test_greeting_before_a_request_is_not_chitchat() -> None:
    scores = score("Hi there! Could you write a Python script that renames all files in a folder?")
    assert scores.intent == "coding"


def test_complexity_orders_prompts_and_tiers() -> None:
    policy = RoutingPolicy()
    easy = decide(SCORER, policy, "hi")
    fact = decide(SCORER, policy, "What is the capital of Peru?")
    hard = decide(
        SCORER,
        policy,
        "Design and implement a distributed, fault-tolerant rate limiter; compare token "
        "bucket and sliding window algorithms, analyze the trade-offs step by step and "
        "prove the worst-case bound.\n```python\nclass Limiter:\n    pass\n```",
    )
    assert easy.complexity == 0.0 and easy.tier == "local"
    assert fact.tier == "local"
    assert hard.complexity is not None and fact.complexity is not None
    assert hard.complexity >= 75 > fact.complexity
    assert hard.tier == "strong"
    assert hard.scorer == "heuristic" and hard.model_version == "heuristic-1"


def test_structure_adds_complexity() -> None:
    plain = score("Please look at the numbers below")
    table = score("Please look at the numbers below\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert table.complexity is not None and plain.complexity is not None
    assert table.complexity > plain.complexity


def test_simple_keywords_lower_complexity() -> None:
    base = score("the history of the Roman empire and its economy over four centuries")
    simple = score("briefly summarize the history of the Roman empire and its economy")
    assert simple.complexity is not None and base.complexity is not None
    assert simple.complexity < base.complexity


def test_huge_prompt_reads_only_the_budget_but_counts_all_tokens() -> None:
    text = "Explain how tides work. " + "The moon pulls the ocean. " * 40_000  # ~1 MB
    big = score(text)
    check_invariants(big)
    # Intent evidence comes from the bounded text only ...
    assert big.intent_scores == score(budget_text(text)).intent_scores
    # ... while the token estimate covers the whole prompt, so the local cap applies.
    assert big.n_tokens > RoutingPolicy().heuristic.local_token_cap
    assert decide(SCORER, RoutingPolicy(), text).tier != "local"


def test_token_estimate_is_utf8_aware() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd" * 10) == 10
    assert estimate_tokens("我爱你" * 10) > estimate_tokens("abc" * 10)


def test_n_tokens_counts_the_whole_conversation() -> None:
    history = [{"role": "assistant", "content": "x " * 20_000}, {"role": "user", "content": "ok"}]
    assert SCORER.score(messages_from_payload(history)).n_tokens > 3000


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "   \n\t ",
        "\x00\x01\x02",
        "\ud800 lone surrogate \udfff",
        "🙂" * 5000,
        "?" * 3000,
        "```" * 1000,
        "a" * 1_000_000,
        [{"role": "wizard", "content": "summon the intent"}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        [{"role": "user", "content": None}],
    ],
)
def test_odd_inputs(payload) -> None:
    check_invariants(SCORER.score(messages_from_payload(payload)))


def test_never_raises_on_malformed_messages() -> None:
    # Not normalised by features: content is not a string. The scorer still answers.
    weird = [{"role": "user", "content": 12345}, {"content": object()}]
    check_invariants(SCORER.score(weird))  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_any_text(text: str) -> None:
    check_invariants(score(text))


_content = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=100)}),
            st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.just({})}),
        ),
        max_size=3,
    ),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries({"role": st.text(max_size=10), "content": _content})))
def test_any_messages(messages) -> None:
    check_invariants(SCORER.score(messages_from_payload(messages)))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["user", "assistant", "system"]),
                "content": st.text(alphabet=" \n\ta", max_size=4),
            }
        )
    )
)
def test_turn_length_matches_features_last_user_text(messages) -> None:
    from router_service.features import last_user_text
    from router_service.heuristic import _last_user_len

    assert _last_user_len(messages) == len(last_user_text(messages))

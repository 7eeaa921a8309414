"""LangChain's ``ChatOpenAI`` pointed at the router, as its users run it: over chat
completions and over the Responses API (``use_responses_api=True``), whole and streamed,
and a tool call bound with ``bind_tools`` and answered with a ``ToolMessage``. Fake
upstreams on loopback; what the backend received is checked, not only what came back."""

from __future__ import annotations

from typing import Any

import pytest

from fakes.llm import openai_completion
from fakes.server import Reply

langchain_openai = pytest.importorskip("langchain_openai")
messages = pytest.importorskip("langchain_core.messages")
tools = pytest.importorskip("langchain_core.tools")


def chat_model(router: Any, model: str, **kw: Any) -> Any:
    return langchain_openai.ChatOpenAI(
        model=model, base_url=router.base_url, api_key="sk-client", max_retries=0, **kw
    )


@tools.tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"21 C in {city}"


def tool_call_completion() -> dict[str, Any]:
    done = openai_completion("", "primary-model")
    message = done["choices"][0]["message"]
    message["content"] = None
    message["tool_calls"] = [
        {
            "id": "call_lc",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    done["choices"][0]["finish_reason"] = "tool_calls"
    return done


@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
def test_invoke_and_stream(fakes, policy, make_router, responses_api: bool) -> None:
    router = make_router(policy)
    llm = chat_model(router, "local", use_responses_api=responses_api)
    answer = llm.invoke("hi")
    assert answer.text == "hello from local"
    sent = fakes.local.calls[-1]
    assert sent.path == "/v1/chat/completions"  # the Responses request arrives translated
    assert sent.json()["messages"][-1] == {"role": "user", "content": "hi"}
    chunks = list(llm.stream("hi again"))
    assert "".join(c.text for c in chunks) == "hello from local"
    assert fakes.local.calls[-1].json()["stream"] is True
    assert fakes.primary.calls == [] and fakes.strong.calls == []


@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
def test_tool_call_round_trip(fakes, policy, make_router, responses_api: bool) -> None:
    router = make_router(policy)
    llm = chat_model(router, "primary", use_responses_api=responses_api).bind_tools([get_weather])
    fakes.primary.script(Reply.json(tool_call_completion()))
    question = messages.HumanMessage("Weather in Paris?")
    first = llm.invoke([question])
    (call,) = first.tool_calls
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris"})
    sent_tools = fakes.primary.calls[-1].json()["tools"]
    assert [t["function"]["name"] for t in sent_tools] == ["get_weather"]
    result = messages.ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    second = llm.invoke([question, first, result])
    assert second.text == "hello from primary"
    history = fakes.primary.calls[-1].json()["messages"]
    assert history[0] == {"role": "user", "content": "Weather in Paris?"}
    assert history[1]["role"] == "assistant"
    assert history[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert history[1]["tool_calls"][0]["id"] == history[2]["tool_call_id"]
    assert history[2]["role"] == "tool" and "21 C in Paris" in str(history[2]["content"])

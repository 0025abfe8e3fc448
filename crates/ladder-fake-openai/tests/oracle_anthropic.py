"""The oracle for the Messages side: the official `anthropic` Python SDK against the fake.

Run by tests/oracle.rs, which queues, in this order, the replies each case below consumes. Every
answer must parse into the SDK's own types, validated strictly (pydantic `model_validate`), whole
and streamed (the SDK's own stream accumulator builds the final message from the events); every
request the SDK builds must be accepted; the fake's rejections must surface as the SDK's own
exception types.
"""
import json
import sys
import urllib.request

import anthropic
from anthropic.types import Message

import oracle_cases  # beside this script
from oracle_cases import case

base = sys.argv[1]
client = anthropic.Anthropic(base_url=base, api_key="oracle-key", max_retries=0)
MODEL = "fake-model"
USER = [{"role": "user", "content": "hi"}]
TOOLS = [
    {"name": "lookup", "description": "Look up.", "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}},
    {"name": "transfer_to_billing", "description": "Hand over.", "input_schema": {"type": "object", "properties": {}}},
]


def raw(body):
    """POSTs a body as-is; the parsed JSON answer."""
    request = urllib.request.Request(
        f"{base}/v1/messages",
        data=json.dumps(body).encode(),
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read().decode())


@case("a whole text message validates strictly")
def _():
    message = Message.model_validate(raw({"model": MODEL, "max_tokens": 64, "messages": USER}))
    assert message.content[0].type == "text" and message.content[0].text == "Hello there, caller."
    assert message.stop_reason == "end_turn"


@case("a streamed text message accumulates in the SDK")
def _():
    with client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello there, caller.", text
    assert final.content[0].text == text
    assert final.usage.output_tokens == 20 and final.usage.cache_read_input_tokens == 40


@case("a whole tool_use message validates strictly")
def _():
    message = Message.model_validate(raw({"model": MODEL, "max_tokens": 64, "messages": USER, "tools": TOOLS}))
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["lookup", "transfer_to_billing"]
    assert uses[0].input == {"id": "a-1"}
    assert message.stop_reason == "tool_use"


@case("streamed tool_use input (input_json_delta) accumulates in the SDK")
def _():
    with client.messages.stream(model=MODEL, max_tokens=64, messages=USER, tools=TOOLS,
                                tool_choice={"type": "any"}) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert uses[0].input == {"id": "a-1"}, uses
    assert uses[1].input == {}, uses


@case("a conversation with tool results, cache breakpoints and a system prompt is accepted")
def _():
    message = client.messages.create(
        model=MODEL, max_tokens=64, tools=[dict(TOOLS[0], cache_control={"type": "ephemeral"})],
        system=[{"type": "text", "text": "You route calls.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "look up a-1"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"id": "a-1"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "paid"}, {"type": "text", "text": "and?"}]},
        ],
    )
    assert message.content[0].text == "ok"


@case("429 and 529 surface as the SDK's status errors")
def _():
    for status, kind in [(429, anthropic.RateLimitError), (529, anthropic.APIStatusError)]:
        try:
            client.messages.create(model=MODEL, max_tokens=64, messages=USER)
        except kind as e:
            assert e.status_code == status, e
        else:
            raise AssertionError(f"no error for {status}")


@case("roles that do not alternate are a BadRequestError")
def _():
    try:
        client.messages.create(model=MODEL, max_tokens=64, messages=USER + USER)
    except anthropic.BadRequestError as e:
        assert "alternate" in str(e), e
    else:
        raise AssertionError("accepted")


@case("a tool_use without its tool_result is a BadRequestError")
def _():
    try:
        client.messages.create(model=MODEL, max_tokens=64, tools=TOOLS, messages=[
            {"role": "user", "content": "look up a-1"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {"id": "a-1"}}]},
            {"role": "user", "content": "and?"},
        ])
    except anthropic.BadRequestError as e:
        assert "tool_result" in str(e), e
    else:
        raise AssertionError("accepted")


@case("no max_tokens is a BadRequestError")
def _():
    try:
        raw({"model": MODEL, "messages": USER})
    except urllib.error.HTTPError as e:
        assert e.code == 400
        body = json.loads(e.read().decode())
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    else:
        raise AssertionError("accepted")


print(f"{oracle_cases.passed} cases passed")

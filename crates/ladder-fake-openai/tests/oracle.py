"""The oracle: the official `openai` Python SDK against ladder-fake-openai.

Run by tests/oracle.rs, which starts the fake and queues, in this order, the replies each case
below consumes. Every well-formed answer must parse into the SDK's own types, validated strictly
(pydantic `model_validate`, not the SDK's lenient `construct`), streamed and not; every request
the SDK builds from its own types must be accepted; the fake's rejections must surface as the
SDK's own exception types; the deliberately malformed answers must be malformed to the SDK too.
"""
import json
import sys

import urllib.request

import openai
import pydantic
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import oracle_cases  # beside this script
from oracle_cases import case

base = sys.argv[1]
client = openai.OpenAI(base_url=base, api_key="oracle-key", max_retries=0)
MODEL = "fake-model"
USER = [{"role": "user", "content": "hi"}]
TOOLS = [
    {"type": "function", "function": {"name": "lookup", "description": "Look up.", "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}},
    {"type": "function", "function": {"name": "transfer_to_billing", "parameters": {"type": "object", "properties": {}}}},
]


class Raw:
    def __init__(self, headers, text):
        self.headers, self.text = headers, text


def raw(body):
    """POSTs a body as-is (no SDK in between)."""
    request = urllib.request.Request(
        f"{base}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return Raw({k.lower(): v for k, v in r.headers.items()}, r.read().decode())


def raw_chunks(body):
    r = raw(body)
    assert r.headers["content-type"].startswith("text/event-stream"), r.headers
    chunks, done = [], False
    for line in r.text.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        chunks.append(json.loads(data))
    return chunks, done


@case("text, not streamed: the SDK parses it and the schema validates it")
def _():
    r = client.chat.completions.with_raw_response.create(model=MODEL, messages=USER)
    strict = ChatCompletion.model_validate_json(r.text)
    parsed = r.parse()
    assert parsed.choices[0].message.content == "Hello there, caller." == strict.choices[0].message.content
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage.prompt_tokens == 100 and parsed.usage.prompt_tokens_details.cached_tokens == 0


@case("text, streamed with include_usage: every chunk validates, usage comes last")
def _():
    stream = client.chat.completions.create(model=MODEL, messages=USER, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there, caller.", text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 120
    body, done = raw_chunks({"model": MODEL, "messages": USER, "stream": True, "stream_options": {"include_usage": True}})
    assert done
    for c in body:
        ChatCompletionChunk.model_validate(c)


@case("tool calls, not streamed: two calls with JSON arguments")
def _():
    r = client.chat.completions.with_raw_response.create(model=MODEL, messages=USER, tools=TOOLS, tool_choice="required")
    ChatCompletion.model_validate_json(r.text)
    msg = r.parse().choices[0].message
    assert [c.function.name for c in msg.tool_calls] == ["lookup", "transfer_to_billing"]
    assert json.loads(msg.tool_calls[0].function.arguments) == {"id": "a-1"}
    assert r.parse().choices[0].finish_reason == "tool_calls"


@case("tool calls, streamed: the SDK's stream helper assembles them")
def _():
    with client.chat.completions.stream(model=MODEL, messages=USER, tools=TOOLS) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["lookup", "transfer_to_billing"]
    assert json.loads(calls[0].function.arguments) == {"id": "a-1"}
    body, done = raw_chunks({"model": MODEL, "messages": USER, "tools": TOOLS, "stream": True})
    assert done
    for c in body:
        ChatCompletionChunk.model_validate(c)


@case("a whole conversation the SDK builds (calls, results, text) is accepted")
def _():
    messages = [
        {"role": "system", "content": "You route."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": \"a\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": \"b\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "c2", "content": "B"},
        {"role": "tool", "tool_call_id": "c1", "content": "A"},
        {"role": "assistant", "content": "Found both."},
        {"role": "user", "content": [{"type": "text", "text": "thanks"}]},
    ]
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, tool_choice="auto", temperature=0, max_tokens=50, parallel_tool_calls=True)
    assert r.choices[0].message.content == "ok"


@case("a request the API rejects: the SDK raises BadRequestError with the reason")
def _():
    bad = [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c9", "content": "done"}]
    try:
        client.chat.completions.create(model=MODEL, messages=bad)
    except openai.BadRequestError as e:
        assert e.status_code == 400
        assert "preceeding message with 'tool_calls'" in e.message, e.message
        assert e.body["type"] == "invalid_request_error" and e.body["param"] == "messages[1].role", e.body
    else:
        raise AssertionError("accepted")
    for bad_tools in ([{"type": "function", "function": {"name": "has space", "parameters": {"type": "object"}}}],
                      [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]):
        try:
            client.chat.completions.create(model=MODEL, messages=USER, tools=bad_tools)
        except openai.BadRequestError:
            pass
        else:
            raise AssertionError(f"accepted {bad_tools}")
    try:
        client.chat.completions.create(model=MODEL, messages=USER, extra_body={"agent": "triage"})
    except openai.BadRequestError as e:
        assert "Unrecognized request argument supplied: agent" in e.message
    else:
        raise AssertionError("unknown field accepted")


@case("status answers become the SDK's error types")
def _():
    for status, kind in ((429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.InternalServerError)):
        try:
            client.chat.completions.create(model=MODEL, messages=USER)
        except kind as e:
            assert e.status_code == status
            assert e.body["message"] == "scripted error"
        else:
            raise AssertionError(f"{status} accepted")


@case("an error inside a stream: the SDK raises APIError")
def _():
    stream = client.chat.completions.create(model=MODEL, messages=USER, stream=True)
    try:
        list(stream)
    except openai.APIError as e:
        assert "does not match" in e.message, e.message
    else:
        raise AssertionError("no error raised")


@case("a call cut by max_tokens: finish_reason length, partial arguments")
def _():
    body, _ = raw_chunks({"model": MODEL, "messages": USER, "tools": TOOLS, "stream": True})
    parsed = [ChatCompletionChunk.model_validate(c) for c in body]
    assert parsed[-1].choices[0].finish_reason == "length"
    r = client.chat.completions.create(model=MODEL, messages=USER, tools=TOOLS)
    assert r.choices[0].finish_reason == "length"
    args = r.choices[0].message.tool_calls[0].function.arguments
    try:
        json.loads(args)
    except json.JSONDecodeError:
        pass
    else:
        raise AssertionError("arguments should be cut")


@case("the malformed answers are malformed to the SDK too")
def _():
    for what in ("content 5", "message null"):
        r = raw({"model": MODEL, "messages": USER})
        try:
            ChatCompletion.model_validate_json(r.text)
        except pydantic.ValidationError:
            pass
        else:
            raise AssertionError(f"{what} validated")
    # choices: []: schema-valid, but there is no answer in it
    r = client.chat.completions.create(model=MODEL, messages=USER)
    assert r.choices == []
    # [DONE] first: the SDK sees no chunk at all
    assert list(client.chat.completions.create(model=MODEL, messages=USER, stream=True)) == []


print(f"oracle: {oracle_cases.passed} cases passed with openai {openai.__version__}")

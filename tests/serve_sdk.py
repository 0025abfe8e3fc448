"""The official `openai` SDK against `ladderc serve`'s OpenAI-compatible endpoint (run by
tests/serve.rs with LADDER_ORACLE_PYTHON). argv: base URL of the server, e.g. http://127.0.0.1:PORT/v1.
The fake model behind the server answers, in order: "Hello from the clerk.", then
"Refund noted and on its way." (streamed word by word)."""
import sys

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

client = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0)

ids = [m.id for m in client.models.list()]
assert ids == ["shop"], ids

pin = {"X-Ladder-Session": "sdk-caller"}
raw = client.chat.completions.with_raw_response.create(
    model="shop", messages=[{"role": "user", "content": "hi"}], extra_headers=pin
)
strict = ChatCompletion.model_validate_json(raw.text)
assert strict.choices[0].message.content == "Hello from the clerk.", strict
assert raw.headers["x-ladder-session"] == "sdk-caller"

stream = client.chat.completions.create(
    model="shop",
    messages=[{"role": "user", "content": "refund inv-2"}],
    stream=True,
    stream_options={"include_usage": True},
    extra_headers=pin,
)
chunks = list(stream)
for c in chunks:
    ChatCompletionChunk.model_validate(c.model_dump(exclude_unset=True))
pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
assert "".join(pieces) == "Refund noted and on its way.", pieces
assert len(pieces) >= 4, f"not streamed token by token: {pieces}"
assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0, chunks[-1]
print(f"serve sdk: ok ({len(pieces)} content chunks) with openai {openai.__version__}")

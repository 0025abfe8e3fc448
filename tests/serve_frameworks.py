"""LangChain's ChatOpenAI and the OpenAI Agents SDK against `ladderc serve`'s chat endpoint (run by
tests/serve.rs with LADDER_ORACLE_PYTHON). argv: base URL, e.g. http://127.0.0.1:PORT/v1.
The fake model behind the server answers, in order: "LangChain one.", "LangChain streams word by
word.", "Agents one.", "Agents stream word by word." Each framework pins its session with the
X-Ladder-Session header, as docs/serve.md says."""
import asyncio
import sys

base = sys.argv[1]

# LangChain
from langchain_openai import ChatOpenAI

llm = ChatOpenAI(base_url=base, api_key="unused", model="shop", max_retries=0,
                 default_headers={"X-Ladder-Session": "langchain-1"})
answer = llm.invoke("hi")
assert answer.content == "LangChain one.", answer
pieces = [c.content for c in llm.stream("and now?") if c.content]
assert "".join(pieces) == "LangChain streams word by word.", pieces
assert len(pieces) >= 3, f"LangChain saw no token streaming: {pieces}"

# OpenAI Agents SDK, through its chat-completions model
from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from openai import AsyncOpenAI
from openai.types.responses import ResponseTextDeltaEvent

set_tracing_disabled(True)
client = AsyncOpenAI(base_url=base, api_key="unused", max_retries=0,
                     default_headers={"X-Ladder-Session": "agents-1"})
agent = Agent(name="front", instructions="(the ladder has its own prompts)",
              model=OpenAIChatCompletionsModel(model="shop", openai_client=client))


async def agents():
    result = await Runner.run(agent, "hi")
    assert result.final_output == "Agents one.", result.final_output
    streamed = Runner.run_streamed(agent, "and now?")
    deltas = []
    async for event in streamed.stream_events():
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            deltas.append(event.data.delta)
    assert "".join(deltas) == "Agents stream word by word.", deltas
    assert len(deltas) >= 3, f"the Agents SDK saw no token streaming: {deltas}"


asyncio.run(agents())
print("serve frameworks: LangChain and the OpenAI Agents SDK ok")

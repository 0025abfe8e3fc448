"""An MCP server on stdio built on the official Python SDK (`mcp`), for the test of what ladderc
sends with a call: its `whoami` tool answers with the request's `_meta`, and `fail` answers a
result marked `isError`."""

import json

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

app = MCPServer("meta-echo")


@app.tool()
async def whoami(note: str, ctx: Context) -> str:
    """Answers with the note and the request's `_meta`."""
    meta = ctx.request_context.meta
    if hasattr(meta, "model_dump"):
        meta = meta.model_dump(by_alias=True, exclude_none=True)
    return json.dumps({"note": note, "meta": meta}, default=str)


@app.tool()
async def fail(reason: str) -> str:
    """Always fails with the reason."""
    # A ToolError's message reaches the client (other exceptions are masked by the SDK).
    raise ToolError(f"refused: {reason}")


if __name__ == "__main__":
    app.run()

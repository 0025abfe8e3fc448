"""Reads Qwen2.5's chat template on stdin, writes the fixed one on stdout.

The model never writes the <tool_call> tags its template asks for; it answers a tool request with a
bare JSON object. The fix asks for exactly that and renders past calls the same way, so that
llama-server parses the model's calls into OpenAI `tool_calls` (see docs/runtime.md).
"""
import sys

t = sys.stdin.read()
edits = [
    (
        r'For each function call, return a json object with function name and arguments within '
        r'<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": '
        r'<args-json-object>}\n</tool_call><|im_end|>\n',
        r'For each function call, return a single-line json object with function name and arguments, '
        r'with no markdown code fences and no other text:\n{\"name\": <function-name>, \"arguments\": '
        r'<args-json-object>}<|im_end|>\n',
    ),
    ("{{- '\\n<tool_call>\\n{\"name\": \"' }}", "{{- '{\"name\": \"' }}"),
    ("{{- '}\\n</tool_call>' }}", "{{- '}' }}"),
]
for old, new in edits:
    if old not in t:
        sys.exit(f"the chat template does not contain the expected text: {old!r}")
    t = t.replace(old, new)
sys.stdout.write(t)

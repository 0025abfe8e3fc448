#!/usr/bin/env bash
# Starts llama-server on 127.0.0.1:$1 (default 8091) with the model from .ci/local-llm.sh and the
# chat-template fix this model needs (it writes tool calls as bare JSON, never in <tool_call>
# tags): the first start reads the model's template from GET /props, the fix is applied and
# cached, and the server is restarted with it. Writes the server's PID to $cache/server.pid.
set -euo pipefail
port="${1:-8091}"
cache="${LADDER_LLM_CACHE:-$HOME/.cache/ladderc-llm}"
server="$cache/bin/llama-server"
model="$cache/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
template="$cache/chat-template.jinja"
py="$cache/venv/bin/python"

start() {
  "$server" -m "$model" --alias qwen2.5-coder-0.5b --jinja "$@" --host 127.0.0.1 --port "$port" \
    -c 8192 -t 2 -np 1 --offline --no-webui --no-repack >"$cache/server.log" 2>&1 &
  echo $! >"$cache/server.pid"
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$cache/server.pid")" 2>/dev/null; then
      echo "llama-server exited:" >&2; tail -n 20 "$cache/server.log" >&2; return 1
    fi
    sleep 0.5
  done
  echo "llama-server did not become healthy" >&2
  return 1
}

stop() { kill "$(cat "$cache/server.pid")" 2>/dev/null || true; sleep 1; }

if [ ! -s "$template" ]; then
  start
  curl -fsS "http://127.0.0.1:$port/props" | "$py" -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)["chat_template"])' \
    | "$py" "$(dirname "$0")/fix_chat_template.py" >"$template.tmp"
  mv "$template.tmp" "$template"
  stop
fi
start --chat-template-file "$template"

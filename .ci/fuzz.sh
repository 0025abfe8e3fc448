#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (LADDER_FUZZ_SECONDS each, default 40) and
# fails on any crash, hang (-timeout) or runaway memory (-rss_limit_mb). Seeds: the examples,
# the checker fixtures and the regression inputs in fuzz/regressions/<target>/ (every crash
# found becomes one, and `cargo test` replays them).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${LADDER_FUZZ_SECONDS:-40}"
# cargo fuzz needs nightly flags (-Z); the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
corpus=target/fuzz-corpus
artifacts=target/fuzz-artifacts
rm -rf "$artifacts"
for target in parse_check mutate_ladders fmt lsp; do
  # A target that never crashed has no regression folder in a fresh clone.
  mkdir -p "$corpus/$target" "$artifacts/$target" "fuzz/regressions/$target"
done
i=0
while IFS= read -r -d '' file; do
  i=$((i + 1))
  for target in parse_check mutate_ladders fmt; do
    cp "$file" "$corpus/$target/seed-$i"
  done
  # A language-server session that opens the ladder, then asks about its first lines.
  { printf '\x00\x00\x00'; cat "$file"; printf '\x00\x03\x01\x08\x04\x02\x0a\x06\x03\x00\x07\x00\x00\x08\x00\x00'; } \
    > "$corpus/lsp/seed-$i"
done < <(find examples tests/fixtures -name '*.ladder' -print0 | sort -z)
# No sanitizer: the code under test is safe Rust; what is hunted is panics, hangs and memory.
cargo fuzz build --fuzz-dir fuzz -s none -O
for target in parse_check mutate_ladders fmt lsp; do
  echo "-- fuzz $target for ${secs}s"
  if ! cargo fuzz run --fuzz-dir fuzz -s none -O "$target" "$corpus/$target" "fuzz/regressions/$target" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$artifacts/$target/" -print_final_stats=1 2>"$artifacts/$target.log"; then
    tail -n 60 "$artifacts/$target.log"
    for crash in "$artifacts/$target"/*; do
      echo "crash input $crash (base64): $(base64 -w0 "$crash")"
    done
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)' "$artifacts/$target.log" | tr '\n' ' '
  echo
done

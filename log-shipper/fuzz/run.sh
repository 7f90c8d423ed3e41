#!/usr/bin/env bash
# Runs the Alloy config fuzz target for $1 seconds (default 60) with
# cargo-fuzz, seeded with the example configs. RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept libFuzzer's nightly-only flags.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/alloy
cp ../examples/*.alloy ../tests/fixtures/alloy/*.alloy corpus/alloy/ 2>/dev/null || true
RUSTC_BOOTSTRAP=1 cargo fuzz run alloy corpus/alloy -- -max_total_time="$seconds" -max_len=65536

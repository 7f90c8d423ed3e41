#!/usr/bin/env bash
# Runs the parser fuzz target for $1 seconds (default 60) with cargo-fuzz.
# libFuzzer needs nightly-only compiler flags; this machine has a stable
# toolchain only, so RUSTC_BOOTSTRAP=1 lets stable accept them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/parsers
# Seed the corpus with the fixture files, one copy per parser selector.
python3 - <<'PY'
import os, pathlib
root = pathlib.Path("../fixtures")
out = pathlib.Path("corpus/parsers")
n = 0
for p in sorted(root.rglob("*")):
    if p.is_file() and not p.is_symlink() and p.stat().st_size < 65536:
        data = p.read_bytes()
        for sel in range(32):
            (out / f"seed-{n}-{sel}").write_bytes(bytes([sel]) + data)
        n += 1
PY
RUSTC_BOOTSTRAP=1 cargo fuzz run parsers corpus/parsers -- -max_total_time="$seconds" -max_len=65536

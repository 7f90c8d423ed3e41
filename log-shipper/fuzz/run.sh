#!/usr/bin/env bash
# Runs the syslog framing/parser fuzz target for $1 seconds (default 60)
# with cargo-fuzz; stable toolchain with RUSTC_BOOTSTRAP=1, as
# node-exporter/fuzz/run.sh does.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/syslog
# Seeds: one message of each framing and format.
printf '\x05<34>1 2003-10-11T22:14:15.003Z host app 12 ID [a@1 k="v"] msg\n' > corpus/syslog/rfc5424
printf '\x4520 <13>Feb  5 17:32:18 h a[1]: m\n' > corpus/syslog/rfc3164-counted
printf '\xc1<13>Oct 11 22:14:15 mymachine su: hi\r\n\n<14>x' > corpus/syslog/mixed
RUSTC_BOOTSTRAP=1 cargo fuzz run syslog corpus/syslog -- -max_total_time="$seconds" -max_len=65536

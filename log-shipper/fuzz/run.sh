#!/usr/bin/env bash
# Runs each of the log-shipper's fuzz targets (the Alloy config parser,
# push API bodies, GELF chunks, syslog framing and parsers) for $1 seconds
# (default 60) each with cargo-fuzz. libFuzzer needs nightly-only compiler
# flags; this machine has a stable toolchain only, so RUSTC_BOOTSTRAP=1
# lets stable accept them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# Seeds: a push of each kind (snappy protobuf, JSON plain and gzip'd, raw,
# a label set) and a zlib'd GELF message in two chunks out of order.
python3 - <<'PY'
import gzip, pathlib, struct, zlib
push = pathlib.Path("corpus/push_body"); push.mkdir(parents=True, exist_ok=True)
j = b'{"streams":[{"stream":{"app":"x"},"values":[["1700000000000000000","line",{"k":"v"}]]}]}'
(push / "json").write_bytes(bytes([4]) + j)
(push / "json-gzip").write_bytes(bytes([5]) + gzip.compress(j))
(push / "raw").write_bytes(bytes([8]) + b"a\r\nb\n\nc")
def varint(n):
    out = b""
    while True:
        b, n = n & 0x7f, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out
def field(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data
ts = varint(1 << 3) + varint(1700000000)
entry = field(1, ts) + field(2, b"hello")
pb = field(1, field(1, b'{app="x"}') + field(2, entry))
assert len(pb) <= 60
(push / "protobuf").write_bytes(bytes([0]) + varint(len(pb)) + bytes([(len(pb) - 1) << 2]) + pb)
(push / "labels").write_bytes(bytes([12]) + b'{a="b", c=`d`, e="\\x41\\n"}')
gelf = pathlib.Path("corpus/gelf_chunks"); gelf.mkdir(parents=True, exist_ok=True)
msg = zlib.compress(b'{"version":"1.1","host":"h","short_message":"hi","level":3,"_x":1}')
half = len(msg) // 2
def dgram(seq, data, adv=0):
    d = b"\x1e\x0f" + b"12345678" + bytes([seq, 2]) + data
    return struct.pack(">H", len(d)) + bytes([adv]) + d
(gelf / "two-chunks").write_bytes(dgram(1, msg[half:]) + dgram(0, msg[:half], 10))
plain = b'{"version":"1.1","host":"h","short_message":"x"}'
(gelf / "whole").write_bytes(struct.pack(">H", len(plain)) + b"\0" + plain)
PY
mkdir -p corpus/alloy
cp ../examples/*.alloy ../tests/fixtures/alloy/*.alloy corpus/alloy/ 2>/dev/null || true
mkdir -p corpus/syslog
# Syslog seeds: one message of each framing and format.
printf '\x05<34>1 2003-10-11T22:14:15.003Z host app 12 ID [a@1 k="v"] msg\n' > corpus/syslog/rfc5424
printf '\x4520 <13>Feb  5 17:32:18 h a[1]: m\n' > corpus/syslog/rfc3164-counted
printf '\xc1<13>Oct 11 22:14:15 mymachine su: hi\r\n\n<14>x' > corpus/syslog/mixed
for target in alloy push_body gelf_chunks syslog; do
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=65536
done

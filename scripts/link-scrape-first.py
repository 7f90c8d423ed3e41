#!/usr/bin/env python3
"""Linker for the static node-exporter: `cc` with lld, the functions a
scrape runs placed first and together (`.cargo/config.toml` names it).

The kernel maps a binary's code 64 KiB at a time around each page a process
touches, so resident memory follows how many 64 KiB windows of the 10 MiB of
text a scrape touches, not how much code it runs: spread over the text by
the default link order, a scrape's code kept 4.1-4.7 MiB resident. lld's
`--symbol-ordering-file` puts the listed functions first, so they share few
windows.

`node-exporter/scrape-functions.txt` lists those functions by name without
the hash that rustc appends to our crates' symbols
(`node_exporter::collectors::stat::...`), so the list survives a change of
code or dependency version; this script finds the symbols of this link that
carry those names (every instance of a generic function) and hands lld their
full names. The standard library's symbols (v0 mangling) and musl's are
listed as they are. A name no longer present is skipped: the layout then
degrades, the build does not break. `bench/scrape_functions.py` regenerates
the list.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FUNCTIONS = os.path.join(HERE, "..", "node-exporter", "scrape-functions.txt")

# Rust's legacy mangling: _ZN, then <length><identifier> per path segment,
# the last one `h` and 16 hex digits (the hash), then E.
_SEGMENT = re.compile(r"(\d+)")
_ESCAPES = {
    "$LT$": "<", "$GT$": ">", "$RF$": "&", "$BP$": "*", "$C$": ",",
    "$u20$": " ", "$u27$": "'", "$u5b$": "[", "$u5d$": "]", "$u7b$": "{",
    "$u7d$": "}", "$u7e$": "~", "$u3b$": ";", "$u2b$": "+", "$u22$": '"',
    "$SP$": "@",
}


def demangle(symbol):
    """The hash-less path of a legacy-mangled Rust symbol; other symbols
    (musl's C functions) are their own name."""
    if not (symbol.startswith("_ZN") and symbol.endswith("E")):
        return symbol
    body, parts, i = symbol[3:-1], [], 0
    while i < len(body):
        m = _SEGMENT.match(body, i)
        if not m:
            return symbol
        n, i = int(m.group(1)), m.end()
        parts.append(body[i : i + n])
        i += n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    # A segment that starts with an escape has an `_` put before it.
    path = "::".join(p[1:] if p.startswith("_$") else p for p in parts)
    path = path.replace("..", "::")
    for k, v in _ESCAPES.items():
        path = path.replace(k, v)
    return path


def wanted_names():
    with open(FUNCTIONS, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#")]


def defined_functions(objects):
    """Every function symbol the objects define, as (name, symbol)."""
    out = subprocess.run(
        ["nm", "--defined-only", "--no-sort", *objects],
        check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in "tTW":
            yield demangle(fields[2]), fields[2]


def main():
    args = sys.argv[1:]
    if not shutil.which("ld.lld"):
        sys.exit("link-scrape-first.py: ld.lld not found; install Debian's lld (`make toolchain`)")
    if os.environ.get("LINK_KEEP_SYMBOLS"):
        # For bench/scrape_functions.py, which needs the functions' names:
        # stripping is all `strip = "symbols"` adds to the link.
        args = [a for a in args if a not in ("-s", "-Wl,--strip-all", "-Wl,-s")]
    objects = [a for a in args if a.endswith(".o") and os.path.isfile(a)]
    by_name = {}
    for name, symbol in defined_functions(objects):
        by_name.setdefault(name, []).append(symbol)
    order = []
    for name in wanted_names():
        order.extend(by_name.get(name, [name]))
    with tempfile.NamedTemporaryFile("w", suffix=".order", delete=False) as f:
        f.write("\n".join(order) + "\n")
    try:
        cmd = ["cc", *args, "-fuse-ld=lld",
               f"-Wl,--symbol-ordering-file={f.name}",
               "-Wl,--no-warn-symbol-ordering"]
        return subprocess.run(cmd).returncode
    finally:
        os.unlink(f.name)


if __name__ == "__main__":
    sys.exit(main())

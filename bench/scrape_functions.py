#!/usr/bin/env python3
"""Writes node-exporter/scrape-functions.txt: the functions that serving a
scrape runs, most instructions first, which the static build's linker
(`scripts/link-scrape-first.py`) places together at the start of the text.

Runs an unstripped static build under callgrind with every default
collector, counting instructions from the end of start-up (its code is
unmapped once the exporter serves, see `node-exporter/src/startup_pages.rs`)
until before shutdown; scrapes alternate between new and kept-alive
connections, every third asks for gzip:

    touch node-exporter/src/main.rs  # relink; the variable below is not tracked
    LINK_KEEP_SYMBOLS=1 make static-exporter
    python3 bench/scrape_functions.py target/x86_64-unknown-linux-musl/release/node-exporter
    touch node-exporter/src/main.rs && make static-exporter  # stripped, new order

Needs valgrind. Regenerate after large changes to what a scrape runs; a
stale list only makes the layout less dense, never the build wrong.
"""

import argparse
import http.client
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "node-exporter", "scrape-functions.txt")
ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"


def linker_script():
    """The linker's own name decoding, so that both sides agree."""
    path = os.path.join(ROOT, "scripts", "link-scrape-first.py")
    spec = importlib.util.spec_from_file_location("link_scrape_first", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, path="/metrics", conn=None, gzip=False):
    """One request, on `conn` (kept alive, as Prometheus does) or a new
    connection."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Accept": ACCEPT}
    if gzip:
        headers["Accept-Encoding"] = "gzip"
    c.request("GET", path, headers=headers)
    resp = c.getresponse()
    resp.read()
    if conn is None:
        c.close()
    return resp.status


def wait_ready(proc, port, timeout=300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("node-exporter exited under valgrind")
        try:
            scrape(port, "/")
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"node-exporter did not answer within {timeout:.0f}s under valgrind")


def self_cost(callgrind_out):
    """{symbol: instructions run in it} from a callgrind output file."""
    names, cost, current, skip_next = {}, {}, None, False
    with open(callgrind_out, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(("fn=", "cfn=")):
                key, _, rest = line.partition("=")
                ident, _, name = rest.partition(" ")
                if name:
                    names[ident] = name
                if key == "fn":
                    current = names.get(ident, ident)
                    cost.setdefault(current, 0)
            elif line.startswith("calls="):
                skip_next = True  # the next line is the call's inclusive cost
            elif line[:1].isdigit() or line[:1] in "+-*":
                if skip_next:
                    skip_next = False
                elif current is not None and len(line.split()) > 1:
                    cost[current] += int(line.split()[-1])
    return cost


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("binary", help="an unstripped static build of node-exporter")
    p.add_argument("-n", "--scrapes", type=int, default=10, help="counted scrapes (default: %(default)s)")
    args = p.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.Popen(
            # Counts restart where start-up ends (see main.rs), so that the
            # serving loop's own set-up and the first requests are counted:
            # code run once after that stays mapped as long as the process.
            ["valgrind", "--tool=callgrind", "--zero-before=*startup_pages7release*",
             "--demangle=no",
             f"--callgrind-out-file={out}", args.binary,
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(proc, port)
            kept = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            for i in range(args.scrapes):
                if scrape(port, conn=kept if i % 2 else None, gzip=i % 3 == 2) != 200:
                    sys.exit("a scrape failed")
            kept.close()
            subprocess.run(["callgrind_control", "--instr=off", str(proc.pid)], check=True,
                           capture_output=True)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        cost = self_cost(out)
    demangle = linker_script().demangle
    ranked = {}
    for symbol, ir in cost.items():
        if ir > 0 and not symbol.startswith("0x"):  # code without a symbol
            name = demangle(symbol)
            ranked[name] = ranked.get(name, 0) + ir
    names = sorted(ranked, key=lambda n: (-ranked[n], n))
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write("# Functions a scrape runs, most instructions first (bench/scrape_functions.py\n"
                "# writes this file; scripts/link-scrape-first.py reads it).\n")
        f.write("\n".join(names) + "\n")
    print(f"{len(names)} functions written to {os.path.relpath(OUTPUT, ROOT)}")


if __name__ == "__main__":
    main()

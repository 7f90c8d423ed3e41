#!/usr/bin/env python3
"""System calls per scrape, per collector, under strace.

For each collector given (default: every collector the exporter enables by
default, read from its --help), start the exporter with only that collector
(--collector.disable-defaults --collector.NAME), warm it up, then attach
`strace -f -c` to it for N scrapes and report the calls per scrape minus
those of an exporter with no collector at all (the HTTP and scrape
framework). What a collector costs on a host that lacks its source (no
mdadm, zfs, bonding, ...) shows up here directly.

    python3 bench/syscalls.py --ours target/x86_64-unknown-linux-musl/release/node-exporter

Needs strace and permission to ptrace the exporter (root, or
kernel.yama.ptrace_scope=0). Python 3 standard library only.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        return r.read()


def default_collectors(binary):
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    names = []
    lines = help_text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s+--collector\.([a-z_0-9]+)\s*$", line)
        if m and i + 1 < len(lines) and "default: true" in lines[i + 1]:
            names.append(m.group(1))
    return names


def measure(binary, collector, scrapes, warmup):
    """(syscalls per scrape, {syscall: calls per scrape}, success line)."""
    port = free_port()
    args = [binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults"]
    if collector:
        args.append(f"--collector.{collector}")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                body = scrape(port)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{collector}: exporter did not answer")
        for _ in range(warmup):
            body = scrape(port)
        success = ""
        if collector:
            m = re.search(
                rb'node_scrape_collector_success\{collector="%s"\} (\S+)' % collector.encode(), body
            )
            success = m.group(1).decode() if m else "?"
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
            tracer = subprocess.Popen(
                ["strace", "-f", "-c", "-o", out.name, "-p", str(proc.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)
            for _ in range(scrapes):
                scrape(port)
            time.sleep(0.2)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=30)
            text = open(out.name).read()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    per = {}
    for line in text.splitlines():
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(f) >= 5 and re.match(r"^[\d.]+$", f[0]) and f[-1] != "total":
            per[f[-1]] = int(f[3]) / scrapes
    return sum(per.values()), per, success


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", required=True, help="the exporter binary")
    ap.add_argument("--collectors", help="comma-separated (default: every default-on one)")
    ap.add_argument("-n", "--scrapes", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    collectors = a.collectors.split(",") if a.collectors else default_collectors(a.ours)
    base, base_per, _ = measure(a.ours, None, a.scrapes, a.warmup)
    print(f"framework (no collector): {base:.1f} syscalls per scrape")
    print(f"{'collector':<18} {'success':>7} {'syscalls/scrape':>15}  top calls (minus framework)")
    rows = []
    for c in collectors:
        total, per, success = measure(a.ours, c, a.scrapes, a.warmup)
        extra = {k: v - base_per.get(k, 0) for k, v in per.items()}
        top = sorted(((v, k) for k, v in extra.items() if v >= 0.5), reverse=True)[:4]
        rows.append((total - base, c, success, top))
    for total, c, success, top in sorted(rows, key=lambda r: (r[2], r[0])):
        calls = ", ".join(f"{k} {v:.0f}" for v, k in top)
        print(f"{c:<18} {success:>7} {total:>15.1f}  {calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

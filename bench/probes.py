#!/usr/bin/env python3
"""CPU per probe: our exporter's /probe against Debian's blackbox_exporter.

Both run with the same modules file and probe the same local targets,
which this script serves itself: an HTTP server (http_2xx), a TCP line
server answering a banner (tcp_connect, and a query_response module), a
DNS server answering one A record over UDP (dns), and 127.0.0.1 (icmp).
For each module, N sequential probes go to one exporter, then to the
other, in alternating rounds; the cost of a probe is the exporter's CPU
seconds (utime+stime from /proc/<pid>/stat) over the round divided by N.
Every probe must answer probe_success 1 on both sides, or the run fails.

Writes its own marked section of BENCHMARKS.md. `make bench` runs it:

    make static-exporter && python3 bench/probes.py
"""

import argparse
import datetime
import http.server
import os
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

THEIRS = "/usr/bin/prometheus-blackbox-exporter"
SECTION_START = "<!-- bench/probes.py: start (generated, replaced on each run) -->"
SECTION_END = "<!-- bench/probes.py: end -->"

MODULES = """modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  tcp_banner:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "^220 bench"
        - send: "QUIT"
  dns:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      transport_protocol: udp
      query_name: bench.example.
      query_type: A
      valid_rcodes: [NOERROR]
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
"""


class QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class BannerHandler(socketserver.StreamRequestHandler):
    def handle(self):
        try:
            self.wfile.write(b"220 bench ready\r\n")
            self.rfile.readline()
        except OSError:
            pass  # tcp_connect closes at once


class ThreadingTCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def dns_server(sock):
    """Answers every query with one A record (127.0.0.1) for its name."""
    while True:
        try:
            query, peer = sock.recvfrom(512)
        except OSError:
            return
        if len(query) < 12:
            continue
        end = 12
        while end < len(query) and query[end] != 0:
            end += query[end] + 1
        question = query[12 : end + 5]
        header = query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
        sock.sendto(header + question + answer, peer)


def start_targets():
    httpd = ThreadingTCP(("127.0.0.1", 0), QuietHandler)
    banner = ThreadingTCP(("127.0.0.1", 0), BannerHandler)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    for target in (httpd.serve_forever, banner.serve_forever, lambda: dns_server(udp)):
        threading.Thread(target=target, daemon=True).start()
    return {
        "http_2xx": f"http://127.0.0.1:{httpd.server_address[1]}/",
        "tcp_connect": f"127.0.0.1:{banner.server_address[1]}",
        "tcp_banner": f"127.0.0.1:{banner.server_address[1]}",
        "dns": f"127.0.0.1:{udp.getsockname()[1]}",
        "icmp": "127.0.0.1",
    }


class Side:
    def __init__(self, label, cmd, port):
        self.label, self.port = label, port
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"probes.py: {label} did not start: {self.proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)

    def probe(self, module, target):
        q = urllib.parse.urlencode({"module": module, "target": target})
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/probe?{q}", timeout=10).read().decode()
        if "\nprobe_success 1" not in "\n" + body:
            raise SystemExit(f"probes.py: {self.label}: {module} on {target} did not succeed:\n{body[-1500:]}")

    def cpu(self):
        return compare.cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ours", default=compare.default_ours(), help="our exporter (default: %(default)s)")
    p.add_argument("--theirs", default=THEIRS, help="blackbox_exporter (default: %(default)s)")
    p.add_argument("-n", "--probes", type=int, default=300, help="probes per module, exporter and round (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: %(default)s)")
    p.add_argument("--output", default=os.path.join(compare.ROOT, "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    for b in (args.ours, args.theirs):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"probes.py: no binary at {b}")
    targets = start_targets()
    work = tempfile.mkdtemp(prefix="probes-bench.")
    modules = os.path.join(work, "blackbox.yml")
    with open(modules, "w") as f:
        f.write(MODULES)
    ours_port, theirs_port = compare.free_port(), compare.free_port()
    ours = Side("ours", [args.ours, "--collector.disable-defaults", f"--probe.config.file={modules}",
                         f"--web.listen-address=127.0.0.1:{ours_port}"], ours_port)
    theirs = Side("blackbox_exporter", [args.theirs, f"--config.file={modules}",
                                       f"--web.listen-address=127.0.0.1:{theirs_port}"], theirs_port)
    cost = {m: {"ours": [], "theirs": []} for m in targets}
    try:
        for module, target in targets.items():
            for side in (ours, theirs):
                for _ in range(20):  # warm-up
                    side.probe(module, target)
            for _ in range(args.rounds):
                for key, side in (("ours", ours), ("theirs", theirs)):
                    before = side.cpu()
                    for _ in range(args.probes):
                        side.probe(module, target)
                    cost[module][key].append((side.cpu() - before) / args.probes)
        rss = {"ours": compare.memory_kib(ours.proc.pid), "theirs": compare.memory_kib(theirs.proc.pid)}
    finally:
        ours.stop()
        theirs.stop()
    command = "python3 bench/probes.py" + ("" if args.probes == 300 else f" -n {args.probes}")
    lines = [
        "## Probes: our /probe against blackbox_exporter, one run",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"load average before the run {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- command: `{command}` (`make bench` runs it); ours: `{args.ours}` ({compare.version_of(args.ours)}), "
        f"theirs: `{args.theirs}` ({compare.version_of(args.theirs)}), the same modules file",
        f"- {args.rounds} alternating rounds of {args.probes} sequential probes per module and exporter, "
        "against targets this script serves on loopback; every probe succeeded on both sides",
        "",
        "| module | ours, CPU ms per probe (mean of rounds) | blackbox_exporter | ours / theirs |",
        "|---|---:|---:|---:|",
    ]
    for module, c in cost.items():
        o, t = sum(c["ours"]) / len(c["ours"]), sum(c["theirs"]) / len(c["theirs"])
        lines.append(f"| {module} | {o * 1000:.3f} | {t * 1000:.3f} | {compare.fmt_ratio(o, t)} |")
    lines += [
        "",
        f"- resident memory after the run: ours {rss['ours'][0] / 1024:.1f} MiB, "
        f"blackbox_exporter {rss['theirs'][0] / 1024:.1f} MiB (ours also serves /metrics, with no collector on)",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        compare.write_section(args.output, section, SECTION_START, SECTION_END)


if __name__ == "__main__":
    main(sys.argv[1:])

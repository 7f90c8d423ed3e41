#!/usr/bin/env python3
"""A fleet of node exporters in one process, for sizing Prometheus.

Serves one recorded node-exporter body (Prometheus' text format) as N
distinct scrape targets, /host/<n>/metrics on one loopback port, with values
that change: counters grow at their own rate, gauges wander, and targets are
spread over VARIANTS phases so that hosts do not all report the same value.
Bodies are regenerated once a second (and gzip-compressed once, as Prometheus
asks for gzip), so a scrape costs a dictionary lookup, not a render.

    fleet_sim.py --body node.prom --targets 2000 --listen 127.0.0.1:19100 \
                 --file-sd targets.json

writes targets.json (Prometheus file_sd: one target per host, label
`instance="host-00001"`, `__metrics_path__` its path) and serves until
stopped. Python standard library only.
"""

import argparse
import gzip
import http.server
import json
import math
import re
import sys
import threading
import time
import zlib

VARIANTS = 16
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\d+)?$")


def parse(body):
    """Splits the body into constant text and samples: (prefix, value,
    is_counter, rate). Comments and TYPE lines are kept as they are."""
    counters = set()
    parts = []
    for i, line in enumerate(body.splitlines()):
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            if kind.strip() in ("counter", "histogram", "summary"):
                counters.add(name)
            parts.append((line, None, False, 0.0))
            continue
        m = SAMPLE.match(line)
        if not m or line.startswith("#"):
            parts.append((line, None, False, 0.0))
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        try:
            v = float(value)
        except ValueError:
            parts.append((line, None, False, 0.0))
            continue
        family = re.sub(r"_(total|sum|count|bucket)$", "", name)
        is_counter = name in counters or family in counters or name.endswith("_total")
        # A rate per line that stays the same between runs (no randomness).
        rate = (zlib.crc32(line.encode()) % 1000) / 100.0 if is_counter else 0.0
        parts.append((name + labels + " ", v, is_counter, rate))
    return parts


def render(parts, t, phase):
    out = []
    for prefix, v, is_counter, rate in parts:
        if v is None:
            out.append(prefix)
        elif is_counter:
            out.append(f"{prefix}{v + rate * (t + phase * 7):.6g}")
        elif v == 0 or v == 1 or not math.isfinite(v):
            out.append(f"{prefix}{v:g}")  # flags, states: as recorded
        else:
            out.append(f"{prefix}{v * (1 + 0.05 * math.sin(t / 60 + phase)):.6g}")
    return ("\n".join(out) + "\n").encode()


class Fleet:
    def __init__(self, body):
        self.parts = parse(body)
        self.start = time.monotonic()
        self.bodies = {}
        self.lock = threading.Lock()
        self.refresh()
        threading.Thread(target=self._loop, daemon=True).start()

    def refresh(self):
        t = time.monotonic() - self.start
        fresh = {}
        for phase in range(VARIANTS):
            raw = render(self.parts, t, phase)
            fresh[phase] = (raw, gzip.compress(raw, compresslevel=1))
        with self.lock:
            self.bodies = fresh

    def _loop(self):
        while True:
            time.sleep(1)
            self.refresh()

    def body(self, host):
        with self.lock:
            return self.bodies[host % VARIANTS]


def serve(fleet, targets, listen):
    host, port = listen.rsplit(":", 1)
    path = re.compile(r"^/host/(\d+)/metrics$")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            m = path.match(self.path.split("?", 1)[0])
            if not m or not 1 <= int(m.group(1)) <= targets:
                self.send_error(404)
                return
            raw, gz = fleet.body(int(m.group(1)))
            use_gzip = "gzip" in (self.headers.get("Accept-Encoding") or "")
            data = gz if use_gzip else raw
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            if use_gzip:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

        def handle_error(self, request, client_address):
            # Prometheus drops a connection whose scrape timed out: not ours to report.
            if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
                super().handle_error(request, client_address)

    return Server((host, int(port)), Handler)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--body", required=True, help="a recorded /metrics body of a node exporter")
    p.add_argument("--targets", type=int, required=True)
    p.add_argument("--listen", default="127.0.0.1:19100", help="loopback address:port")
    p.add_argument("--file-sd", help="write the targets here (Prometheus file_sd JSON)")
    a = p.parse_args()
    if a.targets < 1:
        p.error("--targets must be at least 1")
    with open(a.body) as f:
        fleet = Fleet(f.read())
    server = serve(fleet, a.targets, a.listen)
    if a.file_sd:
        with open(a.file_sd, "w") as f:
            json.dump([{"targets": [a.listen], "labels": {"instance": f"host-{n:05d}",
                                                           "__metrics_path__": f"/host/{n}/metrics"}}
                       for n in range(1, a.targets + 1)], f)
    print(f"serving {a.targets} targets on {a.listen}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

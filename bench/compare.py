#!/usr/bin/env python3
"""Our node-exporter against Debian's prometheus-node-exporter, side by side.

Both run on loopback ports of this machine with the same collectors
(--collector.disable-defaults plus an explicit list) and default web
settings. Each gets a warm-up, then N sequential scrapes, interleaved (ours,
theirs, theirs, ours, ...) so that whatever else the machine is doing falls
on both alike. Measured per exporter:

  - CPU seconds per scrape: utime+stime of the exporter process from
    /proc/<pid>/stat before and after the N scrapes, divided by N
  - p50 / p99 scrape latency: client wall time, request sent to body read
  - bytes per scrape: uncompressed body (and gzip'd body with --gzip, which
    also makes every scrape ask for gzip, as Prometheus does)
  - resident memory (VmRSS, and VmHWM the peak) after the N scrapes
  - binary size

The result goes to stdout and into a marked section of BENCHMARKS.md at the
workspace root (replaced on each run, the rest of the file kept).

Python 3 standard library only. `make bench` builds the release binary first;
by hand:

    make release && python3 bench/compare.py
"""

import argparse
import datetime
import gzip
import http.client
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THEIRS = "/usr/bin/prometheus-node-exporter"
DEFAULT_COLLECTORS = (
    "cpu meminfo loadavg diskstats filesystem netdev netclass netstat stat "
    "vmstat uname time os filefd sockstat pressure entropy conntrack "
    "schedstat textfile softnet udp_queues arp"
).split()
# What Prometheus 2 sends when OpenMetrics is off; both exporters answer it
# with the same text format, so the bodies are comparable.
ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
SECTION_START = "<!-- bench/compare.py: start (generated, replaced on each run) -->"
SECTION_END = "<!-- bench/compare.py: end -->"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def default_ours():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    if not os.path.isabs(target):
        target = os.path.join(ROOT, target)
    # The static build (`make release`), which is what we ship.
    return os.path.join(target, "x86_64-unknown-linux-musl", "release", "node-exporter")


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Benchmark our node-exporter against prometheus-node-exporter.",
    )
    p.add_argument("--ours", default=default_ours(), help="our release binary (default: %(default)s)")
    p.add_argument("--theirs", default=THEIRS, help="node_exporter binary (default: %(default)s)")
    p.add_argument(
        "--before",
        help="an earlier build of ours, run in the same interleaved loop with the same collectors, "
        "so that a change is measured before and after in one run (its column is added to the table)",
    )
    p.add_argument(
        "--collectors",
        default=",".join(DEFAULT_COLLECTORS),
        help="comma-separated collectors to enable in both (those either binary lacks, "
        "or ours refuses at startup, are dropped and reported), or `defaults`: every "
        "collector ours enables by default, which are node_exporter 1.12's Linux defaults "
        "(default: %(default)s)",
    )
    p.add_argument("-n", "--scrapes", type=int, default=1000, help="measured scrapes per exporter (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up scrapes per exporter (default: %(default)s)")
    p.add_argument("--gzip", action="store_true", help="ask for gzip on every scrape and report gzip'd size")
    p.add_argument(
        "--output",
        default=os.path.join(ROOT, "BENCHMARKS.md"),
        help="markdown file whose bench section is written or replaced (default: %(default)s)",
    )
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    if args.scrapes < 1:
        p.error("--scrapes must be at least 1")
    args.collectors = [c.strip() for c in args.collectors.split(",") if c.strip()]
    if not args.collectors:
        p.error("--collectors is empty")
    return args


def die(msg):
    print(f"compare.py: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def collectors_of(binary):
    """The collector names a binary's --help offers."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    return set(re.findall(r"--(?:\[no-\])?collector\.([a-z0-9_]+)\b(?![.\-])", text))


def defaults_of(binary):
    """The collectors our --help says are on by default: `--collector.X`
    whose help ends `(default: true)`, on the same line (clap's layout when
    not on a terminal) or on the next (wrapped, on a terminal)."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    lines = (out.stdout + out.stderr).splitlines()
    names = []
    for i, line in enumerate(lines):
        m = re.match(r"\s+--collector\.([a-z0-9_]+)(\s*$|\s{2,})", line)
        if not m:
            continue
        help_text = line if line[m.end():].strip() else (lines[i + 1] if i + 1 < len(lines) else "")
        if help_text.rstrip().endswith("(default: true)") and m.group(1) not in names:
            names.append(m.group(1))
    return names


def version_of(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return "?"
    first = (out.stdout + out.stderr).strip().splitlines()
    return first[0].strip() if first else "?"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLK_TCK


def memory_kib(pid):
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found.get("VmRSS", 0), found.get("VmHWM", 0)


class Exporter:
    def __init__(self, label, binary, collectors, textfile_dir, extra_args=()):
        self.label = label
        self.binary = binary
        self.port = free_port()
        self.args = [
            binary,
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--collector.disable-defaults",
        ] + [f"--collector.{c}" for c in collectors]
        if "textfile" in collectors:
            self.args.append(f"--collector.textfile.directory={textfile_dir}")
        self.args += list(extra_args)
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        self.conn = None

    def stderr(self):
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self, timeout=15.0):
        """True once it answers; False if it exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/")
                c.getresponse().read()
                c.close()
                return True
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.label} did not answer within {timeout}s:\n{self.stderr()}")

    def scrape(self, want_gzip):
        """One scrape on a kept-alive connection, as Prometheus does.
        Returns (seconds, body as sent, body uncompressed)."""
        headers = {"Accept": ACCEPT}
        if want_gzip:
            headers["Accept-Encoding"] = "gzip"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            start = time.perf_counter()
            try:
                self.conn.request("GET", "/metrics", headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
            except (http.client.HTTPException, OSError):
                # The server closed an idle connection: reconnect once.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            took = time.perf_counter() - start
            if resp.status != 200:
                raise RuntimeError(f"{self.label}: /metrics answered {resp.status}: {raw[:500]!r}")
            if resp.getheader("Content-Encoding", "") == "gzip":
                return took, raw, gzip.decompress(raw)
            return took, raw, raw
        raise AssertionError("unreachable")

    def stop(self):
        if self.conn is not None:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_ours(binary, collectors, textfile_dir):
    """Starts ours, dropping each collector it refuses at startup
    (`collector NAME: ...` on stderr). Returns (exporter, {name: reason})."""
    collectors = list(collectors)
    refused = {}
    while True:
        e = Exporter("ours", binary, collectors, textfile_dir)
        if e.wait_ready():
            return e, collectors, refused
        err = e.stderr()
        e.stop()
        m = re.search(r"collector ([a-z0-9_]+): (.*)", err)
        if not m or m.group(1) not in collectors:
            die(f"our exporter exited at startup:\n{err}")
        refused[m.group(1)] = m.group(2).strip()
        collectors.remove(m.group(1))
        if not collectors:
            die("our exporter refuses every collector asked for: " + ", ".join(sorted(refused)))


def failing_collectors(body):
    return sorted(
        re.findall(rb'^node_scrape_collector_success\{collector="([^"]+)"\} 0\b', body, re.M)
    )


def samples(body):
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def percentile(sorted_values, q):
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def measure(exporters, n, warmup, want_gzip):
    for e in exporters:
        for _ in range(warmup):
            e.scrape(want_gzip)
    lat = {e.label: [] for e in exporters}
    sent = {e.label: 0 for e in exporters}
    plain = {e.label: 0 for e in exporters}
    cpu0 = {e.label: cpu_seconds(e.proc.pid) for e in exporters}
    for i in range(n):
        order = exporters if i % 2 == 0 else exporters[::-1]
        for e in order:
            took, raw, body = e.scrape(want_gzip)
            lat[e.label].append(took)
            sent[e.label] += len(raw)
            plain[e.label] += len(body)
    results = {}
    for e in exporters:
        cpu = cpu_seconds(e.proc.pid) - cpu0[e.label]
        rss, hwm = memory_kib(e.proc.pid)
        ls = sorted(lat[e.label])
        results[e.label] = {
            "cpu": cpu / n,
            "cpu_total": cpu,
            "p50": percentile(ls, 50),
            "p99": percentile(ls, 99),
            "bytes": plain[e.label] / n,
            "gzip_bytes": sent[e.label] / n if want_gzip else None,
            "rss": rss * 1024,
            "hwm": hwm * 1024,
            "size": os.path.getsize(e.binary),
        }
    return results


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def render(args, command, collectors, refused, missing, failing, versions, res):
    ours, theirs = res["ours"], res["theirs"]
    before = res.get("before")
    ms = lambda s: f"{s * 1e3:.3f}"
    mib = lambda b: f"{b / 1048576:.1f}"
    rows = [
        ("CPU per scrape (ms, utime+stime)", "cpu", ms, "<= 0.15"),
        ("scrape latency p50 (ms)", "p50", ms, "<= 1"),
        ("scrape latency p99 (ms)", "p99", ms, "<= 1"),
        ("body per scrape (bytes, uncompressed)", "bytes", lambda b: f"{b:,.0f}", ""),
    ]
    if args.gzip:
        rows.append(("body per scrape (bytes, gzip)", "gzip_bytes", lambda b: f"{b:,.0f}", ""))
    rows += [
        ("samples per scrape", "samples", lambda v: f"{v:,}", ""),
        (f"resident memory after {args.scrapes} scrapes (MiB, VmRSS)", "rss", mib, "<= 0.25"),
        ("peak resident memory (MiB, VmHWM)", "hwm", mib, ""),
        ("binary size (MiB)", "size", mib, ""),
    ]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu_model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    out = [
        "## Ours vs node_exporter, same collectors, one run",
        "",
        f"- date: {now}",
        f"- machine: {os.cpu_count()} CPUs ({cpu_model}), Linux {platform.release()}, "
        f"load average before the run {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- command: `{command}`",
        f"- ours: `{args.ours}` ({versions['ours']}); theirs: `{args.theirs}` ({versions['theirs']})"
        + (f"; before: `{args.before}` (the earlier build of ours)" if before else ""),
        f"- collectors (both, `--collector.disable-defaults` + these): {', '.join(collectors)}",
    ]
    if refused:
        out.append(
            "- dropped, ours refuses them at startup: "
            + "; ".join(f"{k} ({v})" for k, v in sorted(refused.items()))
        )
    if missing:
        out.append(
            "- dropped, not in both binaries: "
            + "; ".join(f"{k} ({v})" for k, v in sorted(missing.items()))
        )
    for label in ("ours", "theirs", "before"):
        if failing.get(label):
            out.append(
                f"- failing on this machine in {label} (node_scrape_collector_success 0): "
                + ", ".join(failing[label])
            )
    out += [
        f"- {args.scrapes} sequential scrapes each after {args.warmup} warm-up ones, interleaved, "
        f"keep-alive, `Accept: {ACCEPT}`"
        + (", `Accept-Encoding: gzip`" if args.gzip else ", no compression")
        + "; default web and exporter-metrics settings (theirs also serves go_*)",
        "",
    ]
    if before:
        out += [
            "| | before | ours | node_exporter | before/theirs | ours/theirs | target |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
    else:
        out += [
            "| | ours | node_exporter | ours/theirs | target |",
            "|---|---:|---:|---:|---|",
        ]
    cell = lambda f, v: f(v) if v is not None else "n/a"
    for name, key, f, target in rows:
        a, b = ours.get(key), theirs.get(key)
        if before:
            c = before.get(key)
            out.append(
                f"| {name} | {cell(f, c)} | {cell(f, a)} | {cell(f, b)} "
                f"| {fmt_ratio(c, b)} | {fmt_ratio(a, b)} | {target} |"
            )
        else:
            out.append(f"| {name} | {cell(f, a)} | {cell(f, b)} | {fmt_ratio(a, b)} | {target} |")
    out += [
        "",
        f"CPU is counted in clock ticks of 1/{CLK_TCK} s over all {args.scrapes} scrapes "
        f"(ours {ours['cpu_total']:.2f} s, theirs {theirs['cpu_total']:.2f} s"
        + (f", before {before['cpu_total']:.2f} s" if before else "")
        + " in total).",
    ]
    ticks = min(ours["cpu_total"], theirs["cpu_total"]) * CLK_TCK
    if ticks < 100:
        out.append(
            f"Only {ticks:.0f} ticks on the quieter side: the CPU ratio is coarse; "
            "use a larger -n for a firmer one."
        )
    return "\n".join(out) + "\n"


def write_section(path, section, start=None, end=None):
    """Writes `section` between the markers `start` and `end` (by default
    compare.py's own), replacing what was there and keeping the rest of the
    file; appended at the end when the markers are not in the file yet.
    containers.py and shipper.py write their sections with their markers."""
    start = start or SECTION_START
    end = end or SECTION_END
    block = f"{start}\n{section}{end}\n"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        if start in text and end in text:
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            tail = tail.lstrip("\n")
            text = head + block + ("\n" + tail if tail else "")
        else:
            text = text.rstrip("\n") + "\n\n" + block
    else:
        text = (
            "# Benchmarks\n\n"
            "Numbers measured on this project's machines; each section says how it was made "
            "and is rewritten by the command it shows.\n\n" + block
        )
    with open(path, "w") as f:
        f.write(text)


def main(argv):
    args = parse_args(argv)
    command = "python3 bench/compare.py" + ("" if not argv else " " + shlex.join(argv))
    for label, b in (("ours", args.ours), ("theirs", args.theirs), ("before", args.before)):
        if b is not None and not os.access(b, os.X_OK):
            hint = (
                "build it with `make release`"
                if label == "ours"
                else "install it with `apt-get install prometheus-node-exporter`"
            )
            die(f"{b} is not an executable ({label}); {hint}")

    if args.collectors == ["defaults"]:
        args.collectors = defaults_of(args.ours)
        if not args.collectors:
            die(f"{args.ours} --help names no collector on by default")
    have_ours, have_theirs = collectors_of(args.ours), collectors_of(args.theirs)
    collectors, missing = [], {}
    for c in args.collectors:
        where = [lbl for lbl, have in (("ours", have_ours), ("node_exporter", have_theirs)) if c not in have]
        if where:
            missing[c] = "not in " + " and ".join(where)
        elif c not in collectors:
            collectors.append(c)
    if not collectors:
        die("no collector left that both binaries have")

    textfile_dir = tempfile.mkdtemp(prefix="bench-textfile-")
    exporters = []
    try:
        ours, collectors, refused = start_ours(args.ours, collectors, textfile_dir)
        exporters.append(ours)
        theirs = Exporter("theirs", args.theirs, collectors, textfile_dir)
        exporters.append(theirs)
        if not theirs.wait_ready():
            die(f"node_exporter exited at startup:\n{theirs.stderr()}")
        if args.before:
            before = Exporter("before", args.before, collectors, textfile_dir)
            exporters.append(before)
            if not before.wait_ready():
                die(f"the earlier build exited at startup:\n{before.stderr()}")
        for c in refused:
            print(f"compare.py: dropped {c}: ours refuses it at startup ({refused[c]})", file=sys.stderr)
        for c in missing:
            print(f"compare.py: dropped {c}: {missing[c]}", file=sys.stderr)

        failing, sample_counts = {}, {}
        for e in exporters:
            _, _, body = e.scrape(False)
            failing[e.label] = [c.decode() for c in failing_collectors(body)]
            sample_counts[e.label] = samples(body)
        res = measure(exporters, args.scrapes, args.warmup, args.gzip)
        for label in res:
            res[label]["samples"] = sample_counts[label]
        versions = {"ours": version_of(args.ours), "theirs": version_of(args.theirs)}
        if args.before:
            versions["before"] = version_of(args.before)
        for e in exporters:
            if e.proc.poll() is not None:
                die(f"{e.label} died during the run:\n{e.stderr()}")
    finally:
        for e in exporters:
            e.stop()
        try:
            os.rmdir(textfile_dir)
        except OSError:
            pass

    section = render(args, command, collectors, refused, missing, failing, versions, res)
    print(section, end="")
    if not args.no_write:
        write_section(args.output, section)
        print(f"\n(written to {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

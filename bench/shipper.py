#!/usr/bin/env python3
"""The log-shipper into the Loki test receiver on loopback, issue 3's figures.

The shipper runs with a promtail-format config file from bench/shipper/
(plain.yaml, nginx.yaml; `-config.expand-env=true` fills in the paths and
ports) and pushes protobuf + snappy to the test receiver
(`tests/examples/loki_bench_receiver.rs`, counting mode), which decodes every push
and reports counts, order problems and latencies on its control port.
Measured:

  a. plain lines: a file of N lines written before the start, shipped from
     its beginning: lines/s (wall) and CPU seconds of the shipper per
     million lines (utime+stime from /proc/<pid>/stat), both over the
     steady middle of the run (10 % to 90 % of the lines acknowledged)
  b. the same for an nginx access log through regex + labels + timestamp
  c. written-to-acknowledged latency p50/p99 at 10,000 lines/s (each line
     carries the time it was written; the receiver takes the difference
     when it acknowledges the push), default batchwait 1s
  d. resident memory with 1,000 files tailed (catch-up, then writes
     spread over all of them)
  e. resident memory during and after a Loki outage (receiver refusing
     connections) with lines written all along; every line must arrive
  syslog. the lines of case a as RFC 5424 messages (octet counting) over
     one TCP connection at full speed into the syslog source
     (bench/shipper/syslog.yaml): lines/s, lines/s per core and memory,
     shown beside case a (file tailing) when both run
  instructions. instructions per line of the hot path (read, pipeline,
     batch, encode, push, ack), counted by valgrind's callgrind: the shipper
     ships N and then 2N lines of case a (and of case b) under callgrind, and
     (I(2N) - I(N)) / N cancels start-up and shutdown. A count, not a time:
     it does not move with the load of a shared machine, so a regression of
     a few percent shows. `--baseline BINARY` counts another build too,
     interleaved with this one, and shows the ratio

Every case checks that exactly the lines written arrived, in order per
stream. Writes its own marked section of BENCHMARKS.md. Python standard
library; `make bench` builds the binaries first; by hand:

    cargo build --release -p log-shipper
    cargo build --release -p e2e-tests --example loki_bench_receiver
    python3 bench/shipper.py --outage-seconds 60     # a quick run
"""

import argparse
import datetime
import json
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SECTION_START = "<!-- bench/shipper.py: start (generated, replaced on each run) -->"
SECTION_END = "<!-- bench/shipper.py: end -->"
CASES = ("plain", "nginx", "latency", "files", "outage", "syslog", "instructions")
MARKER = "wts="
MIB = 1048576
# The issue's targets, and promtail 2.8's figures on such a machine (issue 3).
TARGET_PLAIN_PER_CORE = 500_000
TARGET_PARSED_PER_CORE = 200_000
TARGET_P99_S = 1.5
TARGET_RSS_MIB = 30
PROMTAIL_PLAIN = 53_000
PROMTAIL_PARSED = 34_000
PROMTAIL_RSS_MIB = 90


def release_bin(*parts):
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(compare.ROOT, "target")
    if not os.path.isabs(target):
        target = os.path.join(compare.ROOT, target)
    return os.path.join(target, "release", *parts)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shipper", default=release_bin("log-shipper"), help="default: %(default)s")
    p.add_argument(
        "--receiver", default=release_bin("examples", "loki_bench_receiver"), help="default: %(default)s"
    )
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    p.add_argument("--plain-lines", type=int, default=4_000_000, help="lines in case a (default: %(default)s)")
    p.add_argument("--nginx-lines", type=int, default=2_000_000, help="lines in case b (default: %(default)s)")
    p.add_argument("--latency-rate", type=int, default=10_000, help="lines/s in case c (default: %(default)s)")
    p.add_argument("--latency-seconds", type=int, default=30, help="length of case c (default: %(default)s)")
    p.add_argument("--files", type=int, default=1000, help="files in case d (default: %(default)s)")
    p.add_argument(
        "--outage-seconds",
        type=float,
        default=600,
        help="how long Loki is down in case e (default: %(default)s, the issue's 10 minutes)",
    )
    p.add_argument("--outage-rate", type=int, default=2000, help="lines/s written in case e (default: %(default)s)")
    p.add_argument(
        "--instruction-lines",
        type=int,
        default=50_000,
        help="N of the instructions case: runs of N and 2N lines (default: %(default)s)",
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="another shipper binary whose instructions per line are counted beside --shipper's",
    )
    p.add_argument("--workdir", default=None, help="where logs are written (default: a temp dir, removed after)")
    p.add_argument("--output", default=os.path.join(compare.ROOT, "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in args.cases:
        if c not in CASES:
            p.error(f"unknown case {c!r}; cases: {', '.join(CASES)}")
    return args


def die(msg):
    print(f"shipper.py: {msg}", file=sys.stderr)
    sys.exit(1)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- the receiver -----------------------------------------------------------


class Receiver:
    def __init__(self, binary):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [binary, "--latency-marker", MARKER], stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            die(f"the receiver did not start:\n{self.log.read()}")
        info = json.loads(line)
        self.push_url = info["push_url"]
        self.control = info["control"]

    def call(self, method, path):
        req = urllib.request.Request(self.control + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body.startswith(b"{") else body.decode()

    def stats(self):
        return self.call("GET", "/stats")

    def reset(self):
        self.call("POST", "/reset")

    def down(self, seconds):
        self.call("POST", f"/down?seconds={seconds}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the shipper ------------------------------------------------------------


class Shipper:
    def __init__(self, binary, config, workdir, push_url, wrapper=()):
        self.port = compare.free_port()
        env = dict(os.environ)
        env.update(
            BENCH_DIR=workdir,
            BENCH_LOKI_URL=push_url,
            BENCH_HTTP_PORT=str(self.port),
            BENCH_SYSLOG_PORT=str(compare.free_port()),
        )
        self.syslog_port = int(env["BENCH_SYSLOG_PORT"])
        self.args = [*wrapper, binary, f"-config.file={config}", "-config.expand-env=true"]
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            die(f"the shipper exited ({self.proc.returncode}):\n{self.output()[-3000:]}")

    def cpu(self):
        return compare.cpu_seconds(self.pid)

    def rss_mib(self):
        rss, hwm = compare.memory_kib(self.pid)
        return rss / 1024, hwm / 1024

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def fresh_workdir(root, name):
    d = os.path.join(root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "logs"))
    return d


def config_path(name):
    return os.path.join(HERE, "shipper", name)


# --- line generators ---------------------------------------------------------


def plain_lines(start, n):
    """Application-log-like lines, ~110 bytes, unique."""
    return "".join(
        f"2024-05-01T12:00:00.000Z level=info component=api msg=\"request served\" "
        f"seq={i:09d} user=u{i % 997} took_ms={i % 250}\n"
        for i in range(start, start + n)
    )


METHODS = ("GET", "GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD")
STATUSES = ("200", "200", "200", "200", "200", "304", "301", "404", "500", "403")
AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "curl/8.5.0",
    "Prometheus/2.51.0",
)


def nginx_lines(start, n, t0):
    """nginx `combined` lines, ~200 bytes; 100 lines per second of log time,
    so timestamps only grow (Loki wants each stream in order)."""
    out = []
    for i in range(start, start + n):
        t = time.gmtime(t0 + i // 100)
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", t)
        out.append(
            f'10.{i % 7}.{i % 251}.{i % 239} - - [{stamp}] "{METHODS[i % 8]} /api/v1/items/{i}?page={i % 13} HTTP/1.1" '
            f'{STATUSES[i % 10]} {512 + i % 4096} "https://shop.example.com/cart" "{AGENTS[i % 3]}"\n'
        )
    return "".join(out)


def write_file(path, gen, n, chunk=100_000, **kw):
    with open(path, "w") as f:
        for start in range(0, n, chunk):
            f.write(gen(start, min(chunk, n - start), **kw))


# --- the cases ---------------------------------------------------------------


def wait_for(receiver, shipper, want, timeout, samples=None, interval=0.02):
    """Polls until `want` entries arrived; returns the last stats. Records
    (time, entries, shipper cpu) in `samples` when given."""
    deadline = time.monotonic() + timeout
    while True:
        s = receiver.stats()
        if samples is not None:
            samples.append((time.monotonic(), s["entries"], shipper.cpu()))
        if s["entries"] >= want:
            return s
        shipper.check_alive()
        if time.monotonic() > deadline:
            die(f"only {s['entries']} of {want} lines arrived within {timeout}s; receiver: {s}\n"
                f"shipper output:\n{shipper.output()[-3000:]}")
        time.sleep(interval)


def check_exact(stats, want, what):
    problems = []
    if stats["entries"] != want:
        problems.append(f"{stats['entries']} entries arrived, {want} written")
    if stats.get("duplicates_dropped"):
        problems.append(f"{stats['duplicates_dropped']} entries identical in stream, timestamp and line "
                        f"to one stored (a real Loki drops them too)")
    if stats["problems"]:
        problems.append(f"{stats['problems']} out-of-order entries: {stats['first_problems']}")
    if problems:
        die(f"{what}: " + "; ".join(problems))


def throughput_case(args, root, receiver, name, config, gen, n, **kw):
    work = fresh_workdir(root, name)
    path = os.path.join(work, "logs", "bench.log")
    log(f"{name}: writing {n:,} lines")
    write_file(path, gen, n, **kw)
    size = os.path.getsize(path)
    receiver.reset()
    recv_cpu0 = compare.cpu_seconds(receiver.proc.pid)
    shipper = Shipper(args.shipper, config, work, receiver.push_url)
    t0 = time.monotonic()
    samples = []
    try:
        stats = wait_for(receiver, shipper, n, timeout=max(120, n / 20_000), samples=samples)
        total_wall = time.monotonic() - t0
        total_cpu = shipper.cpu()
        rss, hwm = shipper.rss_mib()
    finally:
        shipper.stop()
    recv_cpu = compare.cpu_seconds(receiver.proc.pid) - recv_cpu0
    check_exact(stats, n, name)
    # The steady middle: from the first sample past 10 % to the first past 90 %.
    lo = next(s for s in samples if s[1] >= n * 0.1)
    hi = next(s for s in samples if s[1] >= n * 0.9)
    lines = hi[1] - lo[1]
    wall = hi[0] - lo[0]
    cpu = hi[2] - lo[2]
    if lines <= 0 or wall <= 0:
        die(f"{name}: the run was too short to measure; use more lines")
    res = {
        "lines": n,
        "bytes": size,
        "streams": stats["streams"],
        "rate": lines / wall,
        "cpu_per_million": cpu / lines * 1e6,
        "per_core": lines / cpu if cpu > 0 else float("inf"),
        "cpu_ticks": cpu * compare.CLK_TCK,
        "total_wall": total_wall,
        "total_cpu": total_cpu,
        "rss": rss,
        "hwm": hwm,
        "receiver_cpu_per_million": recv_cpu / n * 1e6,
    }
    log(f"{name}: {res}")
    return res


def steady_writer(path, rate, seconds, start_seq, stop_early=None, on_tick=None, ticks_per_s=100):
    """Appends `rate` lines/s to `path` for `seconds`, in `ticks_per_s` writes
    per second, each line stamped with the write time. Returns lines written."""
    per_tick = rate / ticks_per_s
    seq = start_seq
    owed = 0.0
    t0 = time.monotonic()
    tick = 0
    with open(path, "a") as f:
        while True:
            now = time.monotonic()
            if now - t0 >= seconds:
                break
            owed += per_tick
            k = int(owed)
            owed -= k
            if k:
                wts = time.time_ns()
                f.write(
                    "".join(
                        f"2024-05-01T12:00:00Z level=info msg=\"steady\" {MARKER}{wts} seq={s:09d} pad=abcdefghijklmnopqrstuvwxyz0123456789\n"
                        for s in range(seq, seq + k)
                    )
                )
                f.flush()
                seq += k
            tick += 1
            if on_tick:
                on_tick(now - t0)
            sleep = t0 + tick / ticks_per_s - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
    return seq - start_seq


def latency_case(args, root, receiver):
    work = fresh_workdir(root, "latency")
    path = os.path.join(work, "logs", "app.log")
    open(path, "w").close()
    receiver.reset()
    shipper = Shipper(args.shipper, config_path("plain.yaml"), work, receiver.push_url)
    try:
        time.sleep(2)  # the empty file is found and tailed
        shipper.check_alive()
        cpu0 = shipper.cpu()
        log(f"latency: {args.latency_rate:,} lines/s for {args.latency_seconds}s")
        n = steady_writer(path, args.latency_rate, args.latency_seconds, 0)
        stats = wait_for(receiver, shipper, n, timeout=30)
        cpu = shipper.cpu() - cpu0
        rss, hwm = shipper.rss_mib()
    finally:
        shipper.stop()
    check_exact(stats, n, "latency")
    lat = stats["latency_ms"]
    if lat["samples"] != n:
        die(f"latency: {lat['samples']} lines timed of {n}")
    res = {
        "lines": n,
        "rate": n / args.latency_seconds,
        "p50": lat["p50"] / 1000,
        "p90": lat["p90"] / 1000,
        "p99": lat["p99"] / 1000,
        "max": lat["max"] / 1000,
        "cpu_share": cpu / args.latency_seconds,
        "rss": rss,
        "hwm": hwm,
    }
    log(f"latency: {res}")
    return res


def files_case(args, root, receiver):
    work = fresh_workdir(root, "files")
    per_file = 100
    paths = [os.path.join(work, "logs", f"app-{i:04d}.log") for i in range(args.files)]
    # Each file its own lines: identical files would look like copies of
    # one another (copytruncate detection compares their first bytes).
    for i, p in enumerate(paths):
        with open(p, "w") as f:
            f.write(plain_lines(i * per_file, per_file))
    n = per_file * args.files
    receiver.reset()
    shipper = Shipper(args.shipper, config_path("plain.yaml"), work, receiver.push_url)
    try:
        t0 = time.monotonic()
        wait_for(receiver, shipper, n, timeout=180, interval=0.1)
        catch_up = time.monotonic() - t0
        rss_after_catch_up, hwm_catch_up = shipper.rss_mib()
        # Then a line per second into every file, over 20 s.
        seconds = 20
        rss_max = 0.0
        seq = n
        handles = [open(p, "a") for p in paths]
        try:
            for sec in range(seconds):
                start = time.monotonic()
                for h in handles:
                    h.write(plain_lines(seq, 1))
                    h.flush()
                    seq += 1
                rss_max = max(rss_max, shipper.rss_mib()[0])
                time.sleep(max(0, 1 - (time.monotonic() - start)))
        finally:
            for h in handles:
                h.close()
        total = seq
        stats = wait_for(receiver, shipper, total, timeout=60, interval=0.1)
        rss, hwm = shipper.rss_mib()
        open_fds = len(os.listdir(f"/proc/{shipper.pid}/fd"))
        active = None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{shipper.port}/metrics", timeout=10) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("promtail_files_active_total"):
                        active = int(float(line.split()[-1]))
        except OSError:
            pass
    finally:
        shipper.stop()
    check_exact(stats, total, "files")
    res = {
        "files": args.files,
        "lines": total,
        "streams": stats["streams"],
        "catch_up": catch_up,
        "rss_after_catch_up": rss_after_catch_up,
        "rss_writing_max": max(rss_max, rss),
        "rss": rss,
        "hwm": hwm,
        "fds": open_fds,
        "active": active,
    }
    log(f"files: {res}")
    return res


def outage_case(args, root, receiver):
    work = fresh_workdir(root, "outage")
    path = os.path.join(work, "logs", "app.log")
    open(path, "w").close()
    receiver.reset()
    shipper = Shipper(args.shipper, config_path("plain.yaml"), work, receiver.push_url)
    rss_samples = []  # (phase, seconds, rss)
    before, during, after = 10, args.outage_seconds, 20
    phase = {"name": "before"}
    last_sample = [0.0]

    def on_tick(elapsed):
        if elapsed - last_sample[0] >= 1.0:
            last_sample[0] = elapsed
            if elapsed >= before + during:
                phase["name"] = "after"
            elif elapsed >= before:
                if phase["name"] == "before":
                    receiver.down(during)
                    log(f"outage: receiver down for {during:g}s")
                phase["name"] = "during"
            rss_samples.append((phase["name"], elapsed, shipper.rss_mib()[0]))
            shipper.check_alive()

    try:
        time.sleep(2)
        log(f"outage: writing {args.outage_rate:,} lines/s for {before + during + after:g}s")
        n = steady_writer(
            path, args.outage_rate, before + during + after, 0, on_tick=on_tick, ticks_per_s=20
        )
        t_end = time.monotonic()
        stats = wait_for(receiver, shipper, n, timeout=600, interval=0.2)
        drained = time.monotonic() - t_end
        rss, hwm = shipper.rss_mib()
    finally:
        shipper.stop()
    check_exact(stats, n, "outage")
    dur = [r for p, _, r in rss_samples if p == "during"]
    res = {
        "seconds": during,
        "rate": args.outage_rate,
        "lines": n,
        "backlog_lines": int(args.outage_rate * during),
        "backlog_mib": args.outage_rate * during * os.path.getsize(path) / max(n, 1) / MIB,
        "rss_during_max": max(dur) if dur else float("nan"),
        "rss_end_of_outage": dur[-1] if dur else float("nan"),
        "rss_after": rss,
        "hwm": hwm,
        "drained_after_writes": drained,
    }
    log(f"outage: {res}")
    return res


# --- report ------------------------------------------------------------------


def syslog_frames(start, n):
    """The lines of case a as RFC 5424 messages with octet counting."""
    out = []
    for line in plain_lines(start, n).splitlines():
        msg = f"<14>1 - bench-host app 1 - - {line}".encode()
        out.append(b"%d %s" % (len(msg), msg))
    return b"".join(out)


def syslog_case(args, root, receiver):
    import socket
    import threading

    n = args.plain_lines
    work = fresh_workdir(root, "syslog")
    log(f"syslog: building {n:,} messages")
    chunks = [syslog_frames(start, min(100_000, n - start)) for start in range(0, n, 100_000)]
    size = sum(len(c) for c in chunks)
    receiver.reset()
    shipper = Shipper(args.shipper, config_path("syslog.yaml"), work, receiver.push_url)
    deadline = time.monotonic() + 30
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", shipper.syslog_port))
            break
        except OSError:
            shipper.check_alive()
            if time.monotonic() > deadline:
                die("the shipper's syslog listener did not come up")
            time.sleep(0.05)

    def send():
        for c in chunks:
            sock.sendall(c)
        sock.close()

    sender = threading.Thread(target=send)
    t0 = time.monotonic()
    samples = []
    sender.start()
    try:
        stats = wait_for(receiver, shipper, n, timeout=max(120, n / 20_000), samples=samples)
        total_wall = time.monotonic() - t0
        total_cpu = shipper.cpu()
        rss, hwm = shipper.rss_mib()
    finally:
        sender.join()
        shipper.stop()
    check_exact(stats, n, "syslog")
    lo = next(s for s in samples if s[1] >= n * 0.1)
    hi = next(s for s in samples if s[1] >= n * 0.9)
    lines, wall, cpu = hi[1] - lo[1], hi[0] - lo[0], hi[2] - lo[2]
    if lines <= 0 or wall <= 0:
        die("syslog: the run was too short to measure; use more lines")
    res = {
        "lines": n,
        "bytes": size,
        "rate": lines / wall,
        "per_core": lines / cpu if cpu > 0 else float("inf"),
        "cpu_per_million": cpu / lines * 1e6,
        "total_wall": total_wall,
        "total_cpu": total_cpu,
        "rss": rss,
        "hwm": hwm,
    }
    log(f"syslog: {res}")
    return res


def callgrind_instructions(args, root, receiver, binary, name, config, gen, n, **kw):
    """Instructions the shipper executes to ship the `n` lines of `gen`
    from a fresh file, start-up and shutdown included (callgrind's total)."""
    work = fresh_workdir(root, name)
    write_file(os.path.join(work, "logs", "bench.log"), gen, n, **kw)
    out = os.path.join(work, "callgrind.out")
    receiver.reset()
    wrapper = ("valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={out}")
    shipper = Shipper(binary, config, work, receiver.push_url, wrapper=wrapper)
    try:
        stats = wait_for(receiver, shipper, n, timeout=max(600, n / 200), interval=0.5)
    finally:
        shipper.stop(timeout=120)
    check_exact(stats, n, f"instructions ({name})")
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    die(f"no instruction total in {out}")


def instructions_case(args, root, receiver):
    if not shutil.which("valgrind"):
        die("the instructions case needs valgrind (make deps installs it)")
    n = args.instruction_lines
    t0 = int(time.time()) - 2 * n // 100 - 3600
    workloads = (
        ("plain", config_path("plain.yaml"), plain_lines, {}),
        ("nginx", config_path("nginx.yaml"), nginx_lines, {"t0": t0}),
    )
    builds = [("shipper", args.shipper)] + ([("baseline", args.baseline)] if args.baseline else [])
    res = {"lines": n, "builds": [b for b, _ in builds]}
    for name, config, gen, kw in workloads:
        for build, binary in builds:
            # Interleaved per workload, so both builds see the same machine.
            small = callgrind_instructions(args, root, receiver, binary, name, config, gen, n, **kw)
            large = callgrind_instructions(args, root, receiver, binary, name, config, gen, 2 * n, **kw)
            res[(build, name)] = (large - small) / n
            log(f"instructions {build} {name}: {small:,} for {n:,} lines, {large:,} for {2 * n:,}: "
                f"{(large - small) / n:,.0f} per line")
    return res


def render(args, command, versions, res):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu_model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    ok = lambda good: "yes" if good else "**no**"
    out = [
        "## log-shipper into the Loki test receiver, one run",
        "",
        f"- date: {now}",
        f"- machine: {os.cpu_count()} CPUs ({cpu_model}), Linux {platform.release()}, "
        f"load average before the run {' '.join(f'{x:.2f}' for x in res['load'])}",
        f"- command: `{command}` (`make bench` runs it with the defaults)",
        f"- shipper: `{args.shipper}` ({versions['shipper']}), configs `bench/shipper/plain.yaml` and "
        "`bench/shipper/nginx.yaml` (promtail's format, `-config.expand-env=true`); receiver: "
        "`tests/examples/loki_bench_receiver.rs` (decodes every protobuf+snappy push, checks order, counts), "
        "on loopback, on the same 2 CPUs",
        "- every case checks that exactly the lines written arrived, each stream in order",
        "- promtail cannot be downloaded here, so its column is the issue's reference figures "
        "for promtail 2.8 on such a machine, not a measurement",
        "",
    ]
    rows = []
    if "plain" in res:
        r = res["plain"]
        rows += [
            (f"(a) plain lines, lines/s (wall)", f"{r['rate']:,.0f}", f"{PROMTAIL_PLAIN:,}", f"{r['rate'] / PROMTAIL_PLAIN:.1f}", ""),
            ("(a) CPU s per million plain lines", f"{r['cpu_per_million']:.2f}", "", "", ""),
            ("(a) plain lines/s per core (1 / CPU per line)", f"{r['per_core']:,.0f}", f"{PROMTAIL_PLAIN:,}",
             f"{r['per_core'] / PROMTAIL_PLAIN:.1f}", f">= {TARGET_PLAIN_PER_CORE:,}: {ok(r['per_core'] >= TARGET_PLAIN_PER_CORE)}"),
            ("(a) resident memory, peak (MiB)", f"{r['hwm']:.1f}", f"~{PROMTAIL_RSS_MIB}", f"{r['hwm'] / PROMTAIL_RSS_MIB:.2f}",
             f"< {TARGET_RSS_MIB}: {ok(r['hwm'] < TARGET_RSS_MIB)}"),
        ]
    if "nginx" in res:
        r = res["nginx"]
        rows += [
            ("(b) nginx regex+labels+timestamp, lines/s (wall)", f"{r['rate']:,.0f}", f"{PROMTAIL_PARSED:,}", f"{r['rate'] / PROMTAIL_PARSED:.1f}", ""),
            ("(b) CPU s per million nginx lines", f"{r['cpu_per_million']:.2f}", "", "", ""),
            ("(b) nginx lines/s per core", f"{r['per_core']:,.0f}", f"{PROMTAIL_PARSED:,}",
             f"{r['per_core'] / PROMTAIL_PARSED:.1f}", f">= {TARGET_PARSED_PER_CORE:,}: {ok(r['per_core'] >= TARGET_PARSED_PER_CORE)}"),
            ("(b) resident memory, peak (MiB)", f"{r['hwm']:.1f}", f"~{PROMTAIL_RSS_MIB}", f"{r['hwm'] / PROMTAIL_RSS_MIB:.2f}",
             f"< {TARGET_RSS_MIB}: {ok(r['hwm'] < TARGET_RSS_MIB)}"),
        ]
    if "latency" in res:
        r = res["latency"]
        rows += [
            (f"(c) latency written->acknowledged p50 (s), {r['rate']:,.0f} lines/s", f"{r['p50']:.3f}", "", "", ""),
            ("(c) latency p99 (s)", f"{r['p99']:.3f}", "", "", f"< {TARGET_P99_S}: {ok(r['p99'] < TARGET_P99_S)}"),
            ("(c) latency max (s)", f"{r['max']:.3f}", "", "", ""),
            ("(c) shipper CPU at that rate (share of one core)", f"{r['cpu_share']:.3f}", "", "", ""),
            ("(c) resident memory, peak (MiB)", f"{r['hwm']:.1f}", "", "", f"< {TARGET_RSS_MIB}: {ok(r['hwm'] < TARGET_RSS_MIB)}"),
        ]
    if "files" in res:
        r = res["files"]
        rows += [
            (f"(d) {r['files']:,} files: resident memory, peak (MiB)", f"{r['hwm']:.1f}", "", "",
             f"< {TARGET_RSS_MIB}: {ok(r['hwm'] < TARGET_RSS_MIB)}"),
            ("(d) resident memory after catch-up / while writing to all (MiB)",
             f"{r['rss_after_catch_up']:.1f} / {r['rss_writing_max']:.1f}", "", "", ""),
        ]
    if "outage" in res:
        r = res["outage"]
        rows += [
            (f"(e) {r['seconds'] / 60:g}-minute outage: resident memory during, max (MiB)", f"{r['rss_during_max']:.1f}",
             "", "", f"< {TARGET_RSS_MIB}: {ok(r['rss_during_max'] < TARGET_RSS_MIB)}"),
            ("(e) resident memory after the backlog was delivered (MiB)", f"{r['rss_after']:.1f}", "", "",
             f"< {TARGET_RSS_MIB}: {ok(r['rss_after'] < TARGET_RSS_MIB)}"),
            ("(e) resident memory, peak over the whole case (MiB)", f"{r['hwm']:.1f}", "", "",
             f"< {TARGET_RSS_MIB}: {ok(r['hwm'] < TARGET_RSS_MIB)}"),
        ]
    if "syslog" in res:
        r = res["syslog"]
        f = res.get("plain")
        beside = lambda key, fmt: (fmt.format(f[key]) if f else "")
        rows += [
            ("(syslog) RFC 5424 over TCP, lines/s (wall)", f"{r['rate']:,.0f}", "", "",
             f"file tailing (a): {beside('rate', '{:,.0f}')}"),
            ("(syslog) lines/s per core", f"{r['per_core']:,.0f}", "", "",
             f"file tailing (a): {beside('per_core', '{:,.0f}')}"),
            ("(syslog) resident memory, peak (MiB)", f"{r['hwm']:.1f}", "", "",
             f"file tailing (a): {beside('hwm', '{:.1f}')}"),
        ]
    if "instructions" in res:
        r = res["instructions"]
        for name, label in (("plain", "plain lines"), ("nginx", "nginx lines (regex+labels+timestamp)")):
            cell = f"{r[('shipper', name)]:,.0f}"
            note = ""
            if ("baseline", name) in r:
                base = r[("baseline", name)]
                note = f"baseline {base:,.0f}: {r[('shipper', name)] / base:.2f} of it"
            rows.append((f"(i) instructions per line, {label} (callgrind)", cell, "", "", note))
    out += [
        "| | ours | promtail 2.8 (issue 3) | ours/promtail | target: met? |",
        "|---|---:|---:|---:|---|",
    ]
    out += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    out.append("")
    notes = []
    for key, label in (("plain", "a"), ("nginx", "b")):
        if key in res:
            r = res[key]
            notes.append(
                f"- ({label}) {r['lines']:,} lines ({r['bytes'] / MIB:.0f} MiB, {r['streams']} stream{'s' if r['streams'] != 1 else ''}) written before the "
                f"start and shipped from the file's beginning; rates over the middle 80 % "
                f"({r['cpu_ticks']:.0f} CPU ticks of 1/{compare.CLK_TCK} s); whole run {r['total_wall']:.1f} s wall, "
                f"{r['total_cpu']:.1f} s CPU incl. start-up and the last batchwait; the receiver used "
                f"{r['receiver_cpu_per_million']:.2f} CPU s per million lines on the same CPUs"
            )
    if "syslog" in res:
        r = res["syslog"]
        notes.append(
            f"- (syslog) the {r['lines']:,} lines of (a) as RFC 5424 messages with octet counting "
            f"({r['bytes'] / MIB:.0f} MiB) sent at full speed over one TCP connection from Python on the same "
            f"machine into the syslog source (`bench/shipper/syslog.yaml`); rates over the middle 80 %; whole run "
            f"{r['total_wall']:.1f} s wall, {r['total_cpu']:.1f} s CPU"
        )
    if "instructions" in res:
        r = res["instructions"]
        base = f"; baseline `{args.baseline}`, counted interleaved" if args.baseline else ""
        notes.append(
            f"- (i) instructions the shipper executes per line read, batched, encoded, pushed and acknowledged, "
            f"counted by `valgrind --tool=callgrind` as (I(2N) - I(N)) / N with N = {r['lines']:,} lines of "
            f"case (a) or (b), so start-up and shutdown cancel out; a count, not a time, so it does not move "
            f"with the machine's load{base}"
        )
    if "latency" in res:
        r = res["latency"]
        notes.append(
            f"- (c) {r['lines']:,} lines at {r['rate']:,.0f} lines/s in 100 writes a second, each line "
            f"stamped with its write time; p90 {r['p90']:.3f} s. batchwait 1s and batchsize 1 MiB (promtail's defaults)"
        )
    if "files" in res:
        r = res["files"]
        notes.append(
            f"- (d) {r['files']:,} files of 100 lines found by one glob, shipped in {r['catch_up']:.1f} s, then one "
            f"line a second into every file for 20 s ({r['lines']:,} lines, {r['streams']:,} streams); "
            f"{r['fds']} descriptors open at the end, promtail_files_active_total {r['active']}"
        )
    if "outage" in res:
        r = res["outage"]
        notes.append(
            f"- (e) {r['rate']:,} lines/s written for 10 s, through a {r['seconds']:g} s outage (the receiver refuses "
            f"connections) and 20 s after: a backlog of {r['backlog_lines']:,} lines ({r['backlog_mib']:.0f} MiB) "
            f"stays in the file, delivered {r['drained_after_writes']:.1f} s after the writes stopped; all "
            f"{r['lines']:,} lines arrived exactly once. The config never gives up a batch "
            "(`backoff_config.max_retries: 0`, `max_period: 30s`)"
        )
    out += notes
    return "\n".join(out) + "\n"


def main(argv):
    args = parse_args(argv)
    command = "python3 bench/shipper.py" + ("" if not argv else " " + shlex.join(argv))
    for what, b, hint in (
        ("shipper", args.shipper, "cargo build --release -p log-shipper"),
        ("receiver", args.receiver, "cargo build --release -p e2e-tests --example loki_bench_receiver"),
    ) + ((("baseline", args.baseline, "cargo build --release -p log-shipper"),) if args.baseline else ()):
        if not os.access(b, os.X_OK):
            die(f"{b} is not an executable ({what}); build it with `{hint}`")
    versions = {"shipper": compare.version_of(args.shipper)}
    res = {"load": os.getloadavg()}
    root = args.workdir or tempfile.mkdtemp(prefix="bench-shipper-")
    os.makedirs(root, exist_ok=True)
    receiver = Receiver(args.receiver)
    try:
        if "plain" in args.cases:
            res["plain"] = throughput_case(
                args, root, receiver, "plain", config_path("plain.yaml"), plain_lines, args.plain_lines
            )
        if "nginx" in args.cases:
            t0 = int(time.time()) - args.nginx_lines // 100 - 3600
            res["nginx"] = throughput_case(
                args, root, receiver, "nginx", config_path("nginx.yaml"), nginx_lines, args.nginx_lines, t0=t0
            )
        if "latency" in args.cases:
            res["latency"] = latency_case(args, root, receiver)
        if "files" in args.cases:
            res["files"] = files_case(args, root, receiver)
        if "outage" in args.cases:
            res["outage"] = outage_case(args, root, receiver)
        if "syslog" in args.cases:
            res["syslog"] = syslog_case(args, root, receiver)
        if "instructions" in args.cases:
            res["instructions"] = instructions_case(args, root, receiver)
    finally:
        receiver.stop()
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    section = render(args, command, versions, res)
    print(section, end="")
    if not args.no_write:
        compare.write_section(args.output, section, SECTION_START, SECTION_END)
        print(f"\n(written to {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Sizing Prometheus for a fleet: one real Prometheus (Debian's) scrapes
tests/fleet_sim/ (one process serving a recorded node-exporter body as N
hosts, values changing) at several fleet sizes, with the rules of
alert-rules/rules/, on loopback. Per size: resident memory, CPU, rule
evaluation time, head series, scrape duration.

    python3 bench/prometheus_sizing.py --sizes 1000,2000,5000 --output BENCHMARKS.md
    python3 bench/prometheus_sizing.py --drop-collector systemd ...

--drop-collector serves the same body without one collector's series (as a
host with that collector off: node_exporter's defaults have systemd off);
its table is a section of its own in BENCHMARKS.md.

Each size: Prometheus starts empty, WARMUP seconds to take every target in,
then MEASURE seconds over which CPU is averaged; memory is read at the end
(and its peak, VmHWM). Short runs: the head block is not cut (2 h), which is
where a long-running Prometheus spends its most memory, so the figures are a
lower bound of a steady state with the same series. Python standard library.
"""

import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import compare  # noqa: E402  (write_section)
sys.path.insert(0, os.path.join(ROOT, "ansible/tests"))
from deploy_test import duration_seconds  # noqa: E402

SIM = os.path.join(ROOT, "tests/fleet_sim/fleet_sim.py")
BODY = os.path.join(ROOT, "tests/fleet_sim/node-exporter-debian12.prom")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


def query(base, q):
    url = f"{base}/api/v1/query?query={urllib.parse.quote(q)}"
    with urllib.request.urlopen(url, timeout=30) as r:
        res = json.loads(r.read())["data"]["result"]
    return float(res[0]["value"][1]) if res else None


def self_metrics(base):
    """Prometheus' own /metrics (it does not scrape itself here): {name: [values]}."""
    out = {}
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name = line.split("{", 1)[0].split(" ", 1)[0]
                out.setdefault(name, []).append(float(line.rsplit(" ", 1)[1]))
    return out


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer in {timeout}s")


def drop_collector(body, collector, work):
    """The body without the collector's families (node_<collector>_*, with
    their HELP and TYPE lines) and its node_scrape_collector_* samples."""
    prefix = f"node_{collector}_"
    kept = []
    with open(body) as f:
        for line in f:
            name = line.split(None, 3)[2] if line.startswith(("# HELP ", "# TYPE ")) else line
            if name.startswith(prefix) or f'collector="{collector}"' in line:
                continue
            kept.append(line)
    path = os.path.join(work, f"body-without-{collector}.prom")
    with open(path, "w") as f:
        f.writelines(kept)
    return path


def markers(args):
    key = f" --drop-collector {args.drop_collector}" if args.drop_collector else ""
    return (f"<!-- bench/prometheus_sizing.py{key}: start (generated, replaced on each run) -->",
            f"<!-- bench/prometheus_sizing.py{key}: end -->")


def run_size(n, args, work):
    sim_port, prom_port = free_port(), free_port()
    sd = os.path.join(work, f"targets-{n}.json")
    sim = subprocess.Popen([sys.executable, SIM, "--body", args.served_body, "--targets", str(n),
                            "--listen", f"127.0.0.1:{sim_port}", "--file-sd", sd],
                           stdout=subprocess.DEVNULL)
    prom = None
    data = os.path.join(work, f"data-{n}")
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/host/1/metrics")
        config = os.path.join(work, f"prometheus-{n}.yml")
        with open(config, "w") as f:
            json.dump({
                "global": {"scrape_interval": args.scrape_interval, "evaluation_interval": args.scrape_interval},
                "rule_files": sorted(glob.glob(os.path.join(ROOT, "alert-rules/rules/*.yml"))),
                "scrape_configs": [{"job_name": "node", "file_sd_configs": [{"files": [sd]}]}],
            }, f)
        prom = subprocess.Popen([args.prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"prom-{n}.log"), "w"))
        base = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{base}/-/ready")
        # The machine is shared: past --max-rss-gib Prometheus is stopped
        # and the size reported as not fitting.
        limit = args.max_rss_gib * 1024 ** 3

        def sleep_watching(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if proc_mem(prom.pid)["VmRSS"] > limit:
                    return False
                time.sleep(2)
            return True
        t_ready = time.monotonic()
        if not sleep_watching(args.warmup):
            return {"targets": n, "over": time.monotonic(), "limit": args.max_rss_gib}
        # Then until every host has been scraped (one rule round after), at
        # most --warmup-max seconds: a size still taking targets in is no steady state.
        while (query(base, 'sum(up{job="node"})') or 0) < n and time.monotonic() < t_ready + args.warmup_max:
            if not sleep_watching(5):
                return {"targets": n, "over": time.monotonic(), "limit": args.max_rss_gib}
        if not sleep_watching(duration_seconds(args.scrape_interval)):
            return {"targets": n, "over": time.monotonic(), "limit": args.max_rss_gib}
        warmed = time.monotonic() - t_ready
        cpu0, sim0, t0 = proc_cpu(prom.pid), proc_cpu(sim.pid), time.monotonic()
        own0 = self_metrics(base)
        if not sleep_watching(args.measure):
            return {"targets": n, "over": time.monotonic(), "limit": args.max_rss_gib}
        cpu1, sim1, t1 = proc_cpu(prom.pid), proc_cpu(sim.pid), time.monotonic()
        own = self_metrics(base)
        appended = "prometheus_tsdb_head_samples_appended_total"
        rules = own.get("prometheus_rule_group_last_duration_seconds", [])
        mem = proc_mem(prom.pid)
        up = query(base, 'sum(up{job="node"})')
        row = {
            "targets": n,
            "up": up,
            "series": own["prometheus_tsdb_head_series"][0],
            "rss": mem["VmRSS"], "hwm": mem["VmHWM"],
            "cpu": (cpu1 - cpu0) / (t1 - t0),
            "sim_cpu": (sim1 - sim0) / (t1 - t0),
            "rules": sum(rules),
            "rules_max": max(rules, default=0),
            "scrape": query(base, 'avg(scrape_duration_seconds{job="node"})'),
            "samples": (sum(own[appended]) - sum(own0[appended])) / (t1 - t0),
            "warmed": warmed,
        }
        print(json.dumps(row), flush=True)
        return row
    finally:
        for p in (prom, sim):
            if p:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(data, ignore_errors=True)


def table(rows, args):
    mib = 1024 * 1024
    dropped = f" --drop-collector {args.drop_collector}" if args.drop_collector else ""
    without = f" without the {args.drop_collector} collector's series" if args.drop_collector else ""
    out = [
        f"## Prometheus sizing: one replica scraping a simulated fleet{without}, one run",
        "",
        f"`python3 bench/prometheus_sizing.py --sizes {args.sizes}{dropped} --warmup {args.warmup} "
        f"--warmup-max {args.warmup_max} --measure {args.measure} --max-rss-gib {args.max_rss_gib:g}`: "
        f"Debian's Prometheus ({args.version}) scrapes `tests/fleet_sim/fleet_sim.py` (one process serving "
        f"`{os.path.relpath(args.body, ROOT)}`, a body of our node-exporter on a Debian 12 server{without}, "
        f"{args.body_series} samples, "
        f"as N hosts with changing values) every {args.scrape_interval}, with the rules of "
        "`alert-rules/rules/` evaluated at the same interval, on loopback, on this shared 2-core machine "
        f"(load {args.load}). Warm-up: at least {args.warmup} s, then until every host has been scraped "
        f"(at most {args.warmup_max} s) and one scrape interval more; CPU over the {args.measure} s after it; memory at the end "
        "(peak in parentheses); rule evaluation: the last evaluation of every group, summed (slowest group).",
        "",
        "| hosts | up | warm-up | head series | resident memory | bytes per series | CPU (cores) | rule evaluation | "
        "avg scrape | samples/s | simulator CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "over" in r:
            out.append(f"| {r['targets']} | stopped: resident memory passed the {r['limit']} GiB this shared "
                       "machine allows the run | | | | | | | | | |")
            continue
        out.append(
            f"| {r['targets']} | {int(r['up'] or 0)} | {r['warmed']:.0f} s | {int(r['series'] or 0):,} | {r['rss'] / mib:.0f} MiB "
            f"({r['hwm'] / mib:.0f}) | {r['rss'] / (r['series'] or 1):,.0f} | {r['cpu']:.2f} | "
            f"{(r['rules'] or 0) * 1000:.0f} ms ({(r['rules_max'] or 0) * 1000:.0f} ms) | "
            f"{(r['scrape'] or 0) * 1000:.0f} ms | {r['samples'] or 0:,.0f} | {r['sim_cpu']:.2f} |")
    out.append("")
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,2000,5000")
    p.add_argument("--body", default=BODY)
    p.add_argument("--drop-collector", metavar="NAME",
                   help="serve the body without this collector's series (e.g. systemd)")
    p.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    p.add_argument("--scrape-interval", default="15s")
    p.add_argument("--warmup", type=int, default=60, help="seconds before measuring, at least")
    p.add_argument("--warmup-max", type=int, default=600,
                   help="seconds to wait at most for every host to be scraped")
    p.add_argument("--measure", type=int, default=120)
    p.add_argument("--max-rss-gib", type=float, default=8.0)
    p.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    try:  # refused before anything starts
        duration_seconds(args.scrape_interval)
    except SystemExit as e:
        raise SystemExit(f"--scrape-interval: {e} (a Prometheus duration: 15s, 1m, 1m30s)") from None
    args.version = subprocess.run([args.prometheus, "--version"], capture_output=True, text=True
                                  ).stdout.split("\n")[0].replace("prometheus, version ", "").split(" ")[0]
    args.load = open("/proc/loadavg").read().split()[0]
    work = tempfile.mkdtemp(prefix="prometheus-sizing.")
    try:
        args.served_body = drop_collector(args.body, args.drop_collector, work) if args.drop_collector else args.body
        with open(args.served_body) as f:
            args.body_series = sum(1 for line in f if line.strip() and not line.startswith("#"))
        if args.body_series == 0:
            raise SystemExit(f"{args.served_body}: no series to serve")
        rows = [run_size(int(n), args, work) for n in args.sizes.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.load += "-" + open("/proc/loadavg").read().split()[0]
    section = table(rows, args)
    print(section)
    if not args.no_write:
        compare.write_section(args.output, section, *markers(args))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Scrape cost of the docker collector with 0, 10 and 50 running containers.

Our release binary runs with only the docker collector on
(`--collector.disable-defaults --collector.docker`, defaults: disk use
measured in the background, root and host cgroups reported) against this
machine's Docker Engine. For each container count, that many busybox
containers (`sleep`, a busybox-static image this script imports under its
own tag, node-exporter-test-busybox:1) are started, the exporter is warmed
up, then N sequential scrapes are measured: CPU seconds of the exporter per
scrape (utime+stime from /proc/<pid>/stat), p50/p99 client latency, body
size and series count. At 50 containers the same is measured again with
disk use off (`--no-collector.docker.disk-usage`) and with containers only
(`--collector.docker.docker-only`), to show what each costs a scrape.
Containers are removed afterwards.

Writes its own marked section of BENCHMARKS.md. Python standard library;
reuses bench/compare.py's helpers. `make bench` runs it after compare.py:

    make release && python3 bench/containers.py
"""

import argparse
import datetime
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

IMAGE = "node-exporter-test-busybox:1"
SECTION_START = "<!-- bench/containers.py: start (generated, replaced on each run) -->"
SECTION_END = "<!-- bench/containers.py: end -->"
COUNTS = (0, 10, 50)


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check).stdout.strip()


def ensure_image():
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0:
        return
    # The same image the tests build: busybox-static in an empty rootfs.
    script = (
        "set -e; d=$(mktemp -d); mkdir -p $d/bin $d/tmp $d/proc $d/sys $d/dev $d/etc; "
        "cp /bin/busybox $d/bin/; for a in $(/bin/busybox --list); do "
        '[ "$a" = busybox ] || ln -s busybox $d/bin/$a; done; '
        f"tar -C $d -c . | docker import - {IMAGE} >/dev/null; rm -rf $d"
    )
    subprocess.run(["sh", "-c", script], check=True)


def start_containers(prefix, n):
    names = []
    for i in range(n):
        name = f"{prefix}-{i}"
        docker("run", "-d", "--name", name, IMAGE, "sleep", "3600")
        names.append(name)
    return names


def remove(names):
    if names:
        docker("rm", "-f", *names, check=False)


def running_in(body, prefix):
    marker = f'name="{prefix}-'.encode()
    return sum(
        1
        for line in body.splitlines()
        if line.startswith(b"container_memory_usage_bytes{") and marker in line
    )


# (row label, extra flags) measured at the largest count only.
VARIANTS = (
    ("disk use off", ["--no-collector.docker.disk-usage"]),
    ("disk use off, containers only", ["--no-collector.docker.disk-usage", "--collector.docker.docker-only"]),
)


def measure(binary, prefix, count, n, warmup, extra=()):
    names = start_containers(prefix, count)
    e = compare.Exporter("ours", binary, ["docker"], None, list(extra))
    try:
        if not e.wait_ready():
            compare.die(f"exporter exited:\n{e.stderr()}")
        # The events stream is asynchronous: wait until every container shows.
        deadline = time.monotonic() + 30
        while True:
            _, _, body = e.scrape(False)
            if running_in(body, prefix) >= count:
                break
            if time.monotonic() > deadline:
                compare.die(f"only {running_in(body, prefix)} of {count} containers seen:\n{e.stderr()}")
            time.sleep(0.2)
        if b'node_scrape_collector_success{collector="docker"} 1' not in body:
            compare.die(f"docker collector failing:\n{e.stderr()}")
        if "--no-collector.docker.disk-usage" not in extra:
            # The first background pass may still be running.
            deadline = time.monotonic() + 30
            while count and b"container_fs_usage_bytes{" not in body:
                if time.monotonic() > deadline:
                    compare.die(f"no container_fs_usage_bytes:\n{e.stderr()}")
                time.sleep(0.2)
                _, _, body = e.scrape(False)
        for _ in range(warmup):
            e.scrape(False)
        cpu0 = compare.cpu_seconds(e.proc.pid)
        lat = []
        for _ in range(n):
            took, _, body = e.scrape(False)
            lat.append(took)
        cpu = compare.cpu_seconds(e.proc.pid) - cpu0
        rss, _ = compare.memory_kib(e.proc.pid)
        lat.sort()
        series = compare.samples(body)
        return {
            "cpu_ms": cpu / n * 1000,
            "p50_ms": compare.percentile(lat, 50) * 1000,
            "p99_ms": compare.percentile(lat, 99) * 1000,
            "bytes": len(body),
            "samples": series,
            "rss_mib": rss / 1024,
            "total_containers": int(docker("info", "--format", "{{.ContainersRunning}}")),
        }
    finally:
        e.stop()
        remove(names)


def render(args, res):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = open("/proc/loadavg").read().split()[:3]
    lines = [
        "## docker collector: scrape cost by running containers",
        "",
        f"- date: {now}",
        f"- machine: {os.cpu_count()} CPUs, load average before the run {' '.join(load)}; "
        f"Docker Engine {docker('info', '--format', '{{.ServerVersion}}')}, "
        f"cgroup v{docker('info', '--format', '{{.CgroupVersion}}')}, "
        f"{docker('info', '--format', '{{.Driver}}')}",
        "- command: `python3 bench/containers.py`",
        f"- ours only, `--collector.disable-defaults --collector.docker`; busybox `sleep` containers; "
        f"{args.scrapes} sequential keep-alive scrapes after {args.warmup} warm-up ones per row",
        "",
        "| running containers | flags | CPU per scrape (ms) | p50 (ms) | p99 (ms) | body (bytes) | samples | RSS (MiB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for count, label, r in res:
        lines.append(
            f"| {count} | {label} | {r['cpu_ms']:.3f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
            f"{r['bytes']:,} | {r['samples']:,} | {r['rss_mib']:.1f} |"
        )
    lines += [
        "",
        "CPU is counted in clock ticks of 1/100 s over all scrapes of a row. A scrape reads the "
        "cgroup files and /proc/<pid>/net/dev of each running container and the cgroup files of "
        "each host cgroup (the list is refreshed in the background); it never calls the Engine "
        "nor walks a container's layer (disk use comes from the last background pass).",
        "",
    ]
    return "\n".join(lines)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ours", default=compare.default_ours())
    p.add_argument("-n", "--scrapes", type=int, default=300)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--output", default=os.path.join(compare.ROOT, "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if not os.path.exists(args.ours):
        compare.die(f"{args.ours} not found: make release")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        compare.die("docker info failed: no Docker Engine to measure against")
    ensure_image()
    prefix = f"ne-bench-{os.getpid()}"
    res = []
    for count in COUNTS:
        res.append((count, "defaults", measure(args.ours, prefix, count, args.scrapes, args.warmup)))
        print(f"{count} containers: {res[-1]}", flush=True)
    for label, extra in VARIANTS:
        flags = " ".join(f"`{x}`" for x in extra)
        r = measure(args.ours, prefix, COUNTS[-1], args.scrapes, args.warmup, extra)
        res.append((COUNTS[-1], f"{label}: {flags}", r))
        print(f"{COUNTS[-1]} containers, {label}: {r}", flush=True)
    section = render(args, res)
    print(section)
    if not args.no_write:
        compare.write_section(args.output, section, SECTION_START, SECTION_END)


if __name__ == "__main__":
    main(sys.argv[1:])

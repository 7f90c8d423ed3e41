#!/usr/bin/env python3
"""Deploys site.yml to real Debian 12 hosts (Docker containers running systemd
as PID 1) and checks from outside what the deployment promises.

Hosts, on a private Docker network made for the run:
  app         an application server (node exporter, log shipper): nginx,
              sshd and sudo logging to the journal, and this machine's
              Docker Engine through its socket (bind-mounted), running one
              test container
  monitoring  node exporter, log shipper, Prometheus, Alertmanager
  outsider    not in the inventory: a machine on the same network that must
              be kept out by the firewalls
The test runner itself is the operator (operator_cidrs = its address on that
network).

What cannot be installed here (Loki and Grafana come only from Grafana Labs'
apt repository, which this machine cannot reach) is exercised by a second,
--check --diff run of site.yml with the `loki` and `grafana` groups filled:
every task of their roles runs in check mode and every template renders.

Environment:
  NODE_EXPORTER_BIN   default <repo>/target/debug/node-exporter
  LOG_SHIPPER_BIN     default <repo>/target/debug/log-shipper
  LOKI_RECEIVER_BIN   default <repo>/target/debug/examples/loki_receiver: the
                      Loki test receiver as a program (`--listen ADDR`, prints
                      one JSON object per received entry: {"labels":{..},"line":".."})
  ALERT_RULES_GLOB    rule files to load (default <repo>/alert-rules/rules/*.yml,
                      or alert-rules/*.yml)
  DEPLOYED_DASHBOARDS_BIN  default <repo>/target/debug/examples/deployed_dashboards:
                      runs every dashboard query against the deployment
  KEEP=1              leave the containers and network up afterwards
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ANSIBLE_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(ANSIBLE_DIR)
RUN = f"fleet-ansible-{os.getpid()}"
HOSTS = ["app", "monitoring", "outsider"]
DOCKER_SOCKET = "/var/run/docker.sock"
IMAGE = [None]
# The app's container on the Docker Engine (labelled for the shipper's filter).
APP_CONTAINER = f"{RUN}-web"

failures = []


def log(msg):
    print(f"[ansible-test] {msg}", flush=True)


def check(ok, what):
    """Records a failed expectation and goes on, so one run shows them all."""
    log(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def sh(*cmd, check_rc=True, capture=True, **kw):
    r = subprocess.run(cmd, text=True, capture_output=capture, **kw)
    if check_rc and r.returncode != 0:
        raise SystemExit(
            f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout or ''}{r.stderr or ''}"
        )
    return r


def container(name):
    return f"{RUN}-{name}"


def start_hosts(image):
    sh("docker", "network", "create", "--driver", "bridge", RUN)
    for h in HOSTS:
        # systemd as PID 1: the host's cgroup tree (v1 with a unified mount),
        # /run and /run/lock as tmpfs. NET_ADMIN for nftables, SYS_ADMIN so
        # systemd can apply the units' sandboxing (mount namespaces).
        # The app host runs containers on this machine's Docker Engine: its
        # socket is bind-mounted where Docker puts it (/var/run is /run, a tmpfs
        # mounted first).
        docker_socket = ["-v", f"{DOCKER_SOCKET}:/run/docker.sock"] if h == "app" else []
        sh(
            "docker", "run", "-d", "--name", container(h), "--hostname", h,
            "--network", RUN, "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN",
            "--stop-signal", "SIGRTMIN+3",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs", "/run", "--tmpfs", "/run/lock",
            *docker_socket,
            image,
        )
    for h in HOSTS:
        deadline = time.time() + 60
        while True:
            r = sh("docker", "exec", container(h), "systemctl", "is-system-running",
                   check_rc=False)
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.time() > deadline:
                raise SystemExit(f"{h}: systemd did not come up (state {state!r})")
            time.sleep(0.5)
        log(f"{h}: systemd is PID 1, system {state}")


def address(h):
    r = sh("docker", "inspect", "-f",
           "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container(h))
    return r.stdout.strip()


def gateway():
    r = sh("docker", "network", "inspect", "-f",
           "{{range .IPAM.Config}}{{.Gateway}}{{end}}", RUN)
    return r.stdout.strip()


def stripped_copy(src, workdir):
    """The debug build carries ~100 MB of debug info; ship it without."""
    dst = os.path.join(workdir, os.path.basename(src))
    if shutil.which("objcopy"):
        sh("objcopy", "--strip-debug", src, dst)
    else:
        shutil.copy(src, dst)
    os.chmod(dst, 0o755)
    return dst


def write_inventory(path, addrs, extra_groups, group_vars, app_vars):
    """A YAML inventory (JSON is YAML) with the example's groups."""
    def hostvars(h):
        return {"ansible_host": container(h), "fleet_address": addrs[h],
                **(app_vars if h == "app" else {})}

    inv = {"all": {
        "vars": group_vars,
        "children": {
            "app_servers": {"hosts": {"app": hostvars("app")}},
            "monitoring": {"hosts": {"monitoring": hostvars("monitoring")}},
            "prometheus": {"children": {"monitoring": {}}},
            "alertmanager": {"children": {"monitoring": {}}},
            "loki": {"children": {"monitoring": {}} if "loki" in extra_groups else {}},
            "grafana": {"children": {"monitoring": {}} if "grafana" in extra_groups else {}},
        },
    }}
    with open(path, "w") as f:
        json.dump(inv, f, indent=2)


def playbook(inventory, logfile, *args):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ANSIBLE_DIR, "ansible.cfg"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    cmd = ["ansible-playbook", "-i", inventory, "site.yml", *args]
    start = time.monotonic()
    with open(logfile, "w") as out:
        r = subprocess.run(cmd, cwd=ANSIBLE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    took = time.monotonic() - start
    text = open(logfile).read()
    recap = {}
    for m in re.finditer(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                         text, re.M):
        recap[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)),
                             "unreachable": int(m.group(4)), "failed": int(m.group(5))}
    return r.returncode, took, text, recap


def http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, json.loads(r.read().decode())


def eventually(what, fn, timeout=90):
    """Polls fn until it returns a true value; the last value otherwise."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, urllib.error.URLError, ValueError) as e:
            last = e
        time.sleep(2)
    log(f"{what}: gave up after {timeout}s, last: {last!r}")
    return None


PROBE = """
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("open")
except ConnectionRefusedError: print("refused")
except OSError: print("filtered")
"""


def probe_from(h, ip, port):
    """open / refused (reachable, nothing listening) / filtered (dropped)."""
    r = sh("docker", "exec", container(h), "python3", "-c", PROBE, ip, str(port))
    return r.stdout.strip()


def probe_local(ip, port):
    import socket
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((ip, port))
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "filtered"
    finally:
        s.close()


class LokiReceiver:
    """The Loki test receiver program, collecting what it prints."""

    def __init__(self, binary, listen):
        import threading
        self.entries = []
        self.proc = subprocess.Popen([binary, "--listen", listen], stdout=subprocess.PIPE,
                                     text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.entries.append(json.loads(line))
            except ValueError:
                pass  # its own messages

    def find(self, labels, needle):
        return [e for e in list(self.entries)
                if needle in e.get("line", "")
                and all(e.get("labels", {}).get(k) == v for k, v in labels.items())]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


NGINX_SITE = """
server {
    listen 80 default_server;
    root /var/www/html;
    # The app's failing endpoint: server errors in the access log.
    location = /fail { return 500; }
}
"""


def prepare_app_host(work):
    """What an application server has before monitoring is deployed: nginx,
    sshd and sudo (logging to the journal only: no rsyslog), Docker's
    `docker` group owning the Engine's socket, and one container."""
    app = container("app")
    r = sh("docker", "exec", app, "sh", "-c",
           "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
           "--no-install-recommends nginx openssh-server sudo", check_rc=False)
    if r.returncode != 0:
        raise SystemExit(f"installing nginx, sshd and sudo on app failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    with open(os.path.join(work, "site"), "w") as f:
        f.write(NGINX_SITE)
    sh("docker", "cp", os.path.join(work, "site"), f"{app}:/etc/nginx/sites-enabled/default")
    sh("docker", "exec", app, "sh", "-c", "echo app > /var/www/html/index.html")
    sh("docker", "exec", app, "systemctl", "reload-or-restart", "nginx")
    # The operator logs in with a key (an accepted SSH login).
    key = os.path.join(work, "id_ed25519")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
    sh("docker", "exec", app, "sh", "-c", "mkdir -p -m 700 /root/.ssh")
    sh("docker", "cp", key + ".pub", f"{app}:/root/.ssh/authorized_keys")
    sh("docker", "exec", app, "chown", "root:root", "/root/.ssh/authorized_keys")
    # As Docker's package does: the socket's group is `docker`.
    gid = os.stat(DOCKER_SOCKET).st_gid
    sh("docker", "exec", app, "groupadd", "-g", str(gid), "docker")
    # The app's container: writes a line every 2 s, has a health check and
    # a memory limit (the Containers dashboard shows both).
    sh("docker", "run", "-d", "--name", APP_CONTAINER, "--label", f"fleet-test={RUN}",
       "--memory", "64m", "--health-cmd", "true", "--health-interval", "2s",
       "--entrypoint", "/bin/sh", IMAGE[0], "-c",
       "i=0; while true; do i=$((i+1)); echo \"web container line $i\"; sleep 2; done")
    return key


def auth_events(key, app_ip):
    """Real SSH logins (accepted, failed, invalid user) and sudo use on app."""
    askpass = key + ".askpass"
    with open(askpass, "w") as f:
        f.write("#!/bin/sh\necho wrong-password\n")
    os.chmod(askpass, 0o755)
    opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]
    sh("ssh", *opts, "-i", key, "-o", "BatchMode=yes", f"root@{app_ip}", "true")
    env = dict(os.environ, SSH_ASKPASS=askpass, SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    for user in ("nobody", "no-such-user"):
        sh("ssh", *opts, "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1",
           f"{user}@{app_ip}", "true", check_rc=False, env=env, stdin=subprocess.DEVNULL)
    sh("docker", "exec", container("app"), "sudo", "true")
    # A wrong password, then end of input: "1 incorrect password attempt".
    sh("docker", "exec", container("app"), "su", "-s", "/bin/sh", "nobody", "-c",
       "printf 'wrong\\n' | sudo -S true", check_rc=False)


# Dashboard panels (file, panel title or "variable $name") whose queries
# cannot all have data on these test hosts (Debian 12 containers on this
# machine, itself a VM), and why. `steady`: the panel never answers here, so
# one that does fails the test until it is taken off the list; the others
# depend on the moment (a TCP state, an alert).
NO_HWMON = "this machine has no /sys/class/hwmon (a VM: no sensors)"
NO_DATA_IN_CONTAINER = {
    # (file, panel): (reason, steady)
    ("alerts-probes.json", "TLS certificate expires in"):
        ("the test's probe targets are plain HTTP: no certificate to expire", True),
    ("containers.json", "Network"):
        ("the exporter runs in the app host's container: the Engine's container PIDs (host PID "
         "namespace) are not in its /proc, where /proc/<pid>/net/dev is read", True),
    ("host-overview.json", "Firing alerts on this host"):
        ("no alert fires for the app host on a healthy deployment", False),
    ("fleet-overview.json", "Hosts now"):
        ("hosts with a firing alert: none on a healthy deployment (Watchdog has no instance); "
         "some when this machine's load or disk sets off an allowed alert", False),
    ("fleet-overview.json", "Hosts over the last $window"):
        ("the same, over the window", False),
    ("host-overview.json", "annotation Alerts firing on this host"):
        ("no alert fires for the app host on a healthy deployment", False),
    ("host-overview.json", "Alert history"):
        ("no alert fires for the app host on a healthy deployment", False),
    ("node-exporter-full.json", "CPU Saturation per Core"): ("this machine has no /proc/schedstat", True),
    ("node-exporter-full.json", "CPU Schedule Timeslices"): ("this machine has no /proc/schedstat", True),
    ("node-exporter-full.json", "CPU Frequency Scaling"):
        ("this machine has no /sys/devices/system/cpu/*/cpufreq (a VM)", True),
    ("node-exporter-full.json", "Hardware Fan Speed"): (NO_HWMON, True),
    ("node-exporter-full.json", "Hardware Temperature Monitor"): (NO_HWMON, True),
    ("node-exporter-full.json", "Cooling Device Utilization"):
        ("this machine has no /sys/class/thermal cooling devices", True),
    ("node-exporter-full.json", "Power Supply"): ("this machine has no power supply in /sys/class/power_supply", True),
    ("node-exporter-full.json", "SWAP Used"): ("this machine has no swap (0 / 0 is NaN)", True),
    ("node-exporter-full.json", "Memory"):
        ("this machine's /proc/meminfo has no HardwareCorrupted (kernel without memory-failure "
         "handling)", True),
    ("node-exporter-full.json", "Pressure Stall Information"):
        ("this machine's kernel has no /proc/pressure/irq", True),
    ("node-exporter-full.json", "CPU"):
        ("its guest-CPU query keeps rates > 0: no virtual machine runs on the test hosts", True),
    ("node-exporter-full.json", "Processes Status"):
        ("the dashboard asks node_kernel_hung_tasks; node_exporter, and ours, export "
         "node_kernel_hung_tasks_total", True),
    ("node-exporter-full.json", "TCP Connections"):
        ("Tcp_MaxConn is not among --collector.netstat.fields' defaults (node_exporter's)", True),
    ("node-exporter-full.json", "Network Operational Status"):
        ("the dashboard asks node_network_up{operstate=\"up\"}; node_network_up has no operstate "
         "label in node_exporter either (node_network_info has)", True),
    ("node-exporter-full.json", "Systemd Units State"): ("our exporter has no systemd collector", True),
    ("node-exporter-full.json", "Systemd Sockets Current"): ("our exporter has no systemd collector", True),
    ("node-exporter-full.json", "Systemd Sockets Accepted"): ("our exporter has no systemd collector", True),
    ("node-exporter-full.json", "Systemd Sockets Refused"): ("our exporter has no systemd collector", True),
    ("node-exporter-full.json", "TCP Stat Transient"):
        ("node_tcp_connection_states has a series only for states some connection is in now", False),
    ("node-exporter-full.json", "TCP Stat Persistent"):
        ("node_tcp_connection_states has a series only for states some connection is in now", False),
}

# Alerts that may be pending or firing on the healthy test deployment:
# (alertname, labels they must have, why).
def allowed_alerts(probe_down):
    return [
        ("Watchdog", {}, "always firing by design: the dead man's switch"),
        ("ProbeFailing", {"instance": probe_down}, "the test's probe target that is down on purpose"),
        ("NodeClockNotSynchronising", {}, "the test hosts are containers: systemd-timesyncd does not run "
         "in one, and the kernel clock (the machine's) is not NTP-disciplined"),
        ("NodeOOMKillDetected", {}, "node_vmstat_oom_kill is the machine's kernel counter: other tests on "
         "this machine (the Docker OOM test) have processes killed by the OOM killer"),
        ("NodeFilesystemFillingUp", {}, "the test hosts' filesystems are this machine's disk (over 60 % "
         "used), which other builds fill and empty while the test runs: predict_linear follows them"),
        ("NodeFilesystemAlmostFull", {}, "the same disk, which this machine's own builds (several target "
         "directories of 15-20 GB) can take past 90 %: seen at 93 % in a run here"),
        *[(name, {}, "the test hosts are containers on this shared 2-core machine: node_load1 and the "
           "CPU are the machine's, busy with other builds")
          for name in ("NodeLoadHigh", "NodeCPUSaturated")],
    ]

# Presets as a user picks them: the app host, the app's container.
DASHBOARD_PRESETS = {
    "host-overview.json": {"job": "node", "instance": "app"},
    "containers.json": {"job": "node", "instance": "app", "container": APP_CONTAINER},
    "node-exporter-full.json": {"job": "node", "nodename": "app", "node": "app"},
}


def check_dashboards(prom, receiver, work):
    """(a) every PromQL query of every dashboard returns data through the
    deployed Prometheus, but those of NO_DATA_IN_CONTAINER; (b) every Loki
    query selects streams the shippers pushed, with labels they carry."""
    binary = os.environ.get("DEPLOYED_DASHBOARDS_BIN",
                            os.path.join(REPO, "target/debug/examples/deployed_dashboards"))
    pushed = os.path.join(work, "pushed.jsonl")
    with open(pushed, "w") as f:
        for e in list(receiver.entries):
            f.write(json.dumps(e) + "\n")
    cmd = [binary, "--prometheus", prom, "--scrape-interval", "5", "--streams", pushed]
    for file, presets in DASHBOARD_PRESETS.items():
        for k, v in presets.items():
            cmd += ["--preset", f"{file}:{k}={v}"]
    r = sh(*cmd, check_rc=False)
    if r.returncode != 0:
        check(False, f"deployed_dashboards ran ({r.returncode}): {r.stderr[-2000:]}")
        return
    results = [json.loads(line) for line in r.stdout.splitlines()]
    with open(os.path.join(work, "dashboards.jsonl"), "w") as f:
        f.write(r.stdout)
    # Panels of each allow-listed entry, answered or not.
    listed_answers = {k: [] for k in NO_DATA_IN_CONTAINER}
    problems = {"promql": [], "loki": []}
    for q in results:
        names = q["panels"] or [q["expr"]]
        listed = [(q["dashboard"], n) for n in names if (q["dashboard"], n) in NO_DATA_IN_CONTAINER]
        for k in listed:
            listed_answers[k].append(q["ok"])
        if not q["ok"] and not listed:
            one_line = " ".join(q["expr"].split())
            problems[q["check"]].append(f"{q['dashboard']} {names}: {one_line} ({q['note']})")
    for kind, what in (("promql", "(a) PromQL queries without data through the deployed Prometheus"),
                       ("loki", "(b) Loki queries that do not fit the pushed streams")):
        n = sum(1 for q in results if q["check"] == kind)
        for p in problems[kind]:
            log(f"  {p}")
        check(n > 0 and not problems[kind], f"{what}: {len(problems[kind])} of {n}")
    for k, oks in sorted(listed_answers.items()):
        if oks and not all(oks):
            log(f"  no data here, as listed: {k[0]} {k[1]!r}: {NO_DATA_IN_CONTAINER[k][0]}")
    stale = [k for k, oks in listed_answers.items()
             if not oks or (NO_DATA_IN_CONTAINER[k][1] and all(oks))]
    check(not stale, f"every panel listed as having no data in a container still has none (stale: {stale})")


def check_alerts(prom, allowed):
    """(c) on the healthy deployment no alert is pending or firing but the
    allowed ones."""
    _, body = http_json(f"{prom}/api/v1/alerts")
    active = [a for a in body["data"]["alerts"] if a["state"] in ("pending", "firing")]
    unexpected = []
    for a in active:
        why = next((why for name, labels, why in allowed if a["labels"].get("alertname") == name
                    and all(a["labels"].get(k) == v for k, v in labels.items())), None)
        # The Engine is this machine's: its other containers are not the test's.
        if why is None and a["labels"].get("name") and not a["labels"]["name"].startswith(RUN):
            why = "a container of another user of this machine's Docker Engine"
        log(f"  alert {a['state']}: {a['labels']}" + (f" (allowed: {why})" if why else ""))
        if why is None:
            unexpected.append(f"{a['labels'].get('alertname')} {a['labels'].get('instance', '')}".strip())
    check(not unexpected, f"(c) no alert pending or firing on the healthy deployment but "
          f"{sorted({name for name, _, _ in allowed})} (unexpected: {sorted(set(unexpected))})")


def cleanup():
    if os.environ.get("KEEP") == "1":
        log(f"KEEP=1: containers {RUN}-* and network {RUN} left up")
        return
    for h in HOSTS + ["web"]:
        sh("docker", "rm", "-f", "-v", container(h), check_rc=False)
    sh("docker", "network", "rm", RUN, check_rc=False)


def main():
    t0 = time.monotonic()
    node_exporter = os.environ.get("NODE_EXPORTER_BIN", os.path.join(REPO, "target/debug/node-exporter"))
    log_shipper = os.environ.get("LOG_SHIPPER_BIN", os.path.join(REPO, "target/debug/log-shipper"))
    if not os.path.isfile(node_exporter):
        raise SystemExit(f"no node-exporter binary at {node_exporter}: run `cargo build -p node-exporter`")
    have_shipper = os.path.isfile(log_shipper)
    receiver_bin = os.environ.get("LOKI_RECEIVER_BIN",
                                  os.path.join(REPO, "target/debug/examples/loki_receiver"))

    rules_glob = os.environ.get("ALERT_RULES_GLOB")
    if not rules_glob:
        for g in ("alert-rules/rules/*.yml", "alert-rules/*.yml"):
            if glob.glob(os.path.join(REPO, g)):
                rules_glob = os.path.join(REPO, g)
                break
    if not rules_glob:
        # alert-rules/ is another part of the repository; until it exists
        # the test loads a small rule file of its own so "rules are loaded"
        # is still checked against a real Prometheus.
        rules_glob = os.path.join(HERE, "fixtures/rules/*.yml")
        log(f"NOTE: no alert-rules/ rule files in the repository; loading {rules_glob}")
    rule_files = glob.glob(rules_glob)

    image = sh(os.path.join(HERE, "build-image.sh"), capture=True).stdout.strip().splitlines()[-1]
    IMAGE[0] = image
    log(f"image {image}")
    work = tempfile.mkdtemp(prefix="fleet-ansible-test.")
    receiver = None
    try:
        start_hosts(image)
        addrs = {h: address(h) for h in HOSTS}
        gw = gateway()
        log(f"addresses {addrs}, operator (this machine) {gw}")

        group_vars = {
            "ansible_connection": "community.docker.docker",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_become": False,
            "operator_cidrs": [f"{gw}/32"],
            "node_exporter_binary_src": stripped_copy(node_exporter, work),
            "prometheus_scrape_interval": "5s",
            "prometheus_evaluation_interval": "5s",
            "prometheus_rules_src_glob": rules_glob,
            # Test values for what a real inventory keeps in ansible-vault.
            "vault_alertmanager_slack_api_url": f"http://{gw}:9/slack-webhook-test",
            "prometheus_runbook_base_url": "https://git.example.com/ops/monitoring/-/blob/main/",
            "vault_grafana_admin_password": "test-only-password",
        }
        app, mon = addrs["app"], addrs["monitoring"]
        # One probe target up (the app's nginx), one down (nothing listens).
        probe_up, probe_down = f"http://{app}/", f"http://{app}:8081/"
        group_vars["probe_targets"] = [
            {"url": probe_up, "labels": {"service": "web"}},
            {"url": probe_down, "module": "http_2xx", "labels": {"service": "gone"}},
        ]
        app_vars = {
            # Prometheus probes the web server; the operator browses it.
            "firewall_extra_input_rules": [f"ip saddr {{ {mon}, {gw} }} tcp dport {{ 80, 8081 }} accept"],
            # Only the test's own containers: the Engine is this machine's.
            "log_shipper_docker_filters": [{"name": "label", "values": [f"fleet-test={RUN}"]}],
        }
        key = prepare_app_host(work)
        skip = []
        receiver = None
        if have_shipper:
            group_vars["log_shipper_binary_src"] = stripped_copy(log_shipper, work)
            # Loki cannot be installed here: the shippers push to the Loki
            # test receiver, listening on this machine's address on the
            # test network (the operator's).
            if os.path.isfile(receiver_bin):
                receiver = LokiReceiver(receiver_bin, f"{gw}:3100")
            group_vars["log_shipper_loki_push_urls"] = [f"http://{gw}:3100/loki/api/v1/push"]
            # The app server's web server logs, as in the example inventory.
            app_vars["log_shipper_extra_targets"] = [
                {"job": "nginx", "path": "/var/log/nginx/access.log", "labels": {"log_type": "access"}},
                {"job": "nginx", "path": "/var/log/nginx/error.log", "labels": {"log_type": "error"}},
            ]
            # A request before the deployment (the firewall is not up yet).
            urllib.request.urlopen(f"http://{app}/?before-deploy", timeout=10).read()
        else:
            skip = ["--skip-tags", "log_shipper"]
            log(f"NOTE: no log-shipper binary at {log_shipper}: the log_shipper role is skipped")

        inventory = os.path.join(work, "hosts.yml")
        write_inventory(inventory, addrs, [], group_vars, app_vars)

        # 1. First deployment, timed.
        rc, took, text, recap = playbook(inventory, os.path.join(work, "run1.log"), *skip)
        if rc != 0:
            print(text[-6000:])
        check(rc == 0 and all(v["failed"] == 0 and v["unreachable"] == 0 for v in recap.values())
              and set(recap) == {"app", "monitoring"},
              f"first run of site.yml succeeds on app and monitoring (recap {recap})")
        log(f"first run of site.yml: {took:.1f}s wall time (seed 002's target: the whole environment in under 600s)")
        if rc != 0:
            raise SystemExit(1)

        # 2. Idempotence.
        rc, took2, text, recap = playbook(inventory, os.path.join(work, "run2.log"), *skip)
        changed = {h: v["changed"] for h, v in recap.items()}
        if rc != 0 or any(changed.values()):
            print("\n".join(line for line in text.splitlines() if line.startswith(("changed:", "TASK", "fatal"))))
        check(rc == 0 and set(changed) == {"app", "monitoring"} and not any(changed.values()),
              f"second run reports changed=0 on every host ({changed}, {took2:.1f}s)")

        prom = f"http://{mon}:9090"

        # 3. Prometheus scrapes the app host's exporter (the operator asks it).
        def app_target_up():
            _, body = http_json(f"{prom}/api/v1/targets?state=active")
            return [t for t in body["data"]["activeTargets"]
                    if t["labels"].get("job") == "node" and t["labels"].get("instance") == "app"
                    and t["health"] == "up"]
        check(eventually("node target of app up", app_target_up) is not None,
              "Prometheus on monitoring has the app host's exporter target (job=node, instance=app) up")

        def value(query):
            _, body = http_json(f"{prom}/api/v1/query?query={urllib.request.quote(query)}")
            return body["data"]["result"]
        res = eventually("node_uname_info of app", lambda: value('node_uname_info{instance="app"}'))
        check(bool(res) and res[0]["metric"].get("nodename") == "app",
              "app's metrics are in Prometheus (node_uname_info{instance=\"app\"} with nodename=app)")

        # 4. The rules are loaded.
        expected = set()
        for f in rule_files:
            expected |= set(re.findall(r"^\s*-?\s*(?:alert|record):\s*['\"]?([A-Za-z_:][\w:]*)",
                                       open(f).read(), re.M))
        _, body = http_json(f"{prom}/api/v1/rules")
        loaded = {r["name"] for g in body["data"]["groups"] for r in g["rules"]}
        check(expected and expected <= loaded,
              f"Prometheus loaded the {len(expected)} rules of {len(rule_files)} rule file(s) "
              f"(missing: {sorted(expected - loaded)[:5]})")

        # 5. Alertmanager answers, and Prometheus sends it alerts.
        status, body = http_json(f"http://{mon}:9093/api/v2/status")
        check(status == 200 and "slack" in body.get("config", {}).get("original", ""),
              "Alertmanager answers /api/v2/status with the Slack config loaded")
        am = eventually("alertmanager discovered", lambda: http_json(f"{prom}/api/v1/alertmanagers")[1]
                        ["data"]["activeAlertmanagers"])
        check(bool(am) and any(f"{mon}:9093" in a["url"] for a in am),
              f"Prometheus sends alerts to Alertmanager ({am})")

        # 6. Reachability: the firewall policy, seen from each side.
        exporter_ports = [9100] + ([9080] if have_shipper else [])
        for port in exporter_ports:
            for host in ("app", "monitoring"):
                check(probe_from("monitoring", addrs[host], port) == "open",
                      f"monitoring reaches {host}:{port}")
                check(probe_local(addrs[host], port) == "open",
                      f"the operator reaches {host}:{port}")
                check(probe_from("outsider", addrs[host], port) == "filtered",
                      f"the outsider cannot reach {host}:{port}")
            check(probe_from("app", mon, port) == "filtered",
                  f"the app host (not a Prometheus host) cannot reach monitoring:{port}")
        for port in (9090, 9093):
            check(probe_local(mon, port) == "open", f"the operator reaches monitoring:{port}")
            check(probe_from("outsider", mon, port) == "filtered",
                  f"the outsider cannot reach monitoring:{port}")
            check(probe_from("app", mon, port) == "filtered",
                  f"the app host cannot reach monitoring:{port}")

        # 7. What runs on the app host arrives, labelled as LABELS.md says.
        if receiver:
            for path in ("/?after-deploy", "/no-such-page", "/fail"):
                try:
                    urllib.request.urlopen(f"http://{app}{path}", timeout=10).read()
                except urllib.error.HTTPError:
                    pass  # 404 and 500 are the point
            auth_events(key, app)
            sh("docker", "restart", "-t", "1", APP_CONTAINER)  # Docker events
            web = {"job": "nginx", "host": "app"}
            auth = {"job": "auth", "log_type": "auth", "host": "app"}
            for what, labels, needle in [
                ("a web server request made before the deployment",
                 {**web, "log_type": "access", "status_class": "2xx", "method": "GET"}, "GET /?before-deploy "),
                ("a request after it", {**web, "log_type": "access", "status_class": "2xx"}, "GET /?after-deploy "),
                ("a server error", {**web, "log_type": "access", "status_class": "5xx"}, "GET /fail "),
                ("nginx's error log", {**web, "log_type": "error", "level": "error"}, "no-such-page"),
                ("an accepted SSH login from the journal", {**auth, "program": "sshd", "auth_event": "accepted"},
                 "Accepted publickey for root"),
                ("a failed SSH login", {**auth, "program": "sshd", "auth_event": "failed"}, "Failed password for nobody"),
                ("an SSH login of an unknown user", {**auth, "program": "sshd", "auth_event": "invalid_user"},
                 "Invalid user no-such-user"),
                ("a sudo command", {**auth, "program": "sudo", "auth_event": "sudo_command"}, "COMMAND=/usr/bin/true"),
                ("a denied sudo", {**auth, "program": "sudo", "auth_event": "sudo_denied"}, "nobody"),
                ("the journal", {"job": "journal", "log_type": "service", "host": "app", "unit": "ssh.service"},
                 "Accepted publickey for root"),
                ("the app's container log", {"job": "docker", "log_type": "container", "host": "app",
                                             "container": APP_CONTAINER, "stream": "stdout"}, "web container line"),
                ("the Engine's events", {"job": "docker_events", "log_type": "event", "host": "app",
                                         "type": "container", "action": "restart"}, APP_CONTAINER),
                ("Prometheus' own log", {"job": "prometheus", "log_type": "service", "host": "monitoring"}, "msg="),
                ("Alertmanager's own log", {"job": "alertmanager", "log_type": "service", "host": "monitoring"},
                 "msg="),
                ("the shipper's own log, from the journal", {"job": "log-shipper", "log_type": "service",
                                                           "host": "app", "unit": "log-shipper.service",
                                                           "level": "info"}, "msg="),
            ]:
                check(eventually(what, lambda: receiver.find(labels, needle), timeout=60) is not None,
                      f"Loki receives {what} with labels {labels}")
        else:
            log("NOTE: log delivery is not checked: it needs the log-shipper binary and the "
                f"Loki test receiver program ({receiver_bin})")

        # 7b. Container metrics on the Docker host, probes from the Prometheus host.
        check(eventually("container metrics", lambda: value(
                  f'container_last_seen{{job="node",instance="app",name="{APP_CONTAINER}"}}')) is not None,
              "the app host's exporter runs the docker collector (container_last_seen of the app's container)")
        check(not value('node_scrape_collector_success{collector="docker",instance="monitoring"}'),
              "the monitoring host (no Docker socket) does not run the docker collector")
        for url, want in ((probe_up, "1"), (probe_down, "0")):
            got = eventually(f"probe of {url}", lambda: value(f'probe_success{{job="probe",instance="{url}"}}'))
            check(bool(got) and got[0]["value"][1] == want,
                  f"Prometheus probes {url} through the exporter: probe_success {want} "
                  f"({got[0]['value'][1] if got else 'no series'})")
        for job in ("node", "log-shipper", "prometheus", "alertmanager", "probe"):
            check(eventually(f"job {job}", lambda: value(f'up{{job="{job}"}} == 1')) is not None,
                  f"Prometheus scrapes job {job!r} (the name the dashboards and rules use)")

        # 7c. Every dashboard query, against what was deployed.
        if receiver:
            # rate() over $__rate_interval (5 scrapes) needs a few scrapes of each job.
            eventually("six scrapes of every target", lambda: value(
                'min(count_over_time(up[2m])) >= 6'), timeout=120)
            check_dashboards(prom, receiver, work)
        # 7d. A healthy deployment raises no alert (pending or firing).
        check_alerts(prom, allowed_alerts(probe_down))

        # 8. Loki and Grafana: --check --diff with their groups filled in.
        inventory_full = os.path.join(work, "hosts-full.yml")
        write_inventory(inventory_full, addrs, ["loki", "grafana"], group_vars, app_vars)
        # Only the monitoring host, and only these roles, change with these
        # groups; the other roles were just shown to be converged.
        rc, took3, text, recap = playbook(inventory_full, os.path.join(work, "check.log"),
                                          "--check", "--diff", "--limit", "monitoring",
                                          "--tags", "loki,grafana,firewall,prometheus", *skip)
        if rc != 0:
            print(text[-6000:])
        check(rc == 0 and all(v["failed"] == 0 for v in recap.values()),
              f"site.yml --check with loki and grafana on monitoring passes ({took3:.1f}s)")
        for what, needle in [
            ("Loki config renders with retention", "retention_period: 744h"),
            ("Loki config renders with filesystem storage", f"chunks_directory: /var/lib/loki/chunks"),
            ("Grafana's datasources get Prometheus' URL", f"Environment=PROMETHEUS_URL=http://{mon}:9090"),
            ("Grafana's datasources get Loki's URL", f"Environment=LOKI_URL=http://{mon}:3100"),
            ("Grafana's datasources get Alertmanager's URL", f"Environment=ALERTMANAGER_URL=http://{mon}:9093"),
            ("Grafana provisions the dashboards directory", "GRAFANA_DASHBOARDS_DIR=/var/lib/grafana/dashboards/fleet"),
            ("Grafana gets the repository's dashboards", "grafana-dashboards/fleet-overview.json"),
            ("firewall opens Loki to the fleet", f"tcp dport {{ 3100 }} accept"),
            ("the shipper gets a target file for Grafana's log", "__path__: /var/log/grafana/grafana.log"),
            ("Prometheus scrapes Grafana (job grafana)", f'- targets: ["{mon}:3000"]'),
        ]:
            check(needle in text, f"--check --diff: {what} ({needle!r})")
        check("test-only-password" not in text,
              "--check --diff does not print the Grafana admin password")
        check("slack-webhook-test" not in open(os.path.join(work, "run1.log")).read(),
              "the playbook output does not print the Slack webhook URL")
    finally:
        if receiver:
            receiver.stop()
        cleanup()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs and inventory kept in {work}")

    log(f"total {time.monotonic() - t0:.1f}s")
    if failures:
        log(f"{len(failures)} check(s) failed:")
        for f in failures:
            log(f"  - {f}")
        sys.exit(1)
    log("all checks passed")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Deploys site.yml to real Debian 12 hosts (Docker containers running systemd
as PID 1) and checks from outside what the deployment promises.

Two topologies (DEPLOY_TOPOLOGY): `single` (the default, `make
ansible-test`) is app, monitoring (one Prometheus, one Alertmanager, no
cluster, no long-term store) and outsider; `ha` (`make ansible-ha-test`) is
issue 19's high-availability deployment with every host below, and the same
checks plus those of high availability (its second run is tsdb's only, and
only the roles that differ there: VictoriaMetrics, the Alertmanager peer, the
firewall; the other hosts' roles are the single topology's).

Hosts, on a private Docker network made for the run:
  app         an application server (node exporter, log shipper): nginx,
              sshd and sudo logging to the journal, and this machine's
              Docker Engine through its socket (bind-mounted), running one
              test container
  app2        (ha) a second application server (the agents only)
  monitoring  node exporter, log shipper, Prometheus (replica 1), Alertmanager (peer 1)
  monitoring2 (ha) the same: Prometheus replica 2, Alertmanager peer 2
  tsdb        (ha) VictoriaMetrics (long-term storage), Alertmanager peer 3
  outsider    not in the inventory: a machine on the same network that must
              be kept out by the firewalls

High availability (issue 19, `ha` only): the replicas write to VictoriaMetrics, which
is stopped for 2 minutes during the rules' `for:` (its TargetDown is notified
once, and resolved once) and must have no hole when it is back; old samples
written into it are read through the Grafana datasource's URL; once the
first alert is notified, monitoring2 (a replica and a peer) is stopped as a
container while the faults' rules run their `for`; their alerts and the new
one its loss raises reach Slack once each, and it is started again: it rejoins, its Alertmanager notifies nothing during its start
delay, the app's disks are freed during that delay and the other faults
undone after it, and nothing is notified twice.
The test runner itself is the operator (operator_cidrs = its address on that
network), and runs the receivers Alertmanager notifies on that address: a
Slack webhook (HTTP, port 8080; the heartbeat is its /heartbeat) and a mail
server (SMTP, port 2525).

After the healthy checks the test fills small filesystems past their
thresholds (the app host is also a `db` server: 95 %), kills the app's
container and keeps a probe target down (the second (idempotence) and
--check runs happen while the healthy deployment is checked from outside; in
`ha` tsdb's second run later, while monitoring2's start delay is waited out).
Each alert must reach the receivers the inventory routes it to once, and be
resolved once when undone.
The rules are the production ones with one change, as in tests/src/rules.rs:
every `for:` is divided by FOR_DIVISOR, and at least FOR_FLOOR (5 minutes
become 1, 15 become 3), and so is every `keep_firing_for:`, kept at least
KEEP_FIRING_FLOOR (1 minute becomes 15 s: three scrape intervals, so a missed
scrape still resolves nothing), so that the whole test stays within `make
test`'s time; expressions, thresholds, labels and annotations are unchanged.

What cannot be installed here (Loki and Grafana come only from Grafana Labs'
apt repository, which this machine cannot reach) is exercised by a second,
--check --diff run of site.yml with the `loki` and `grafana` groups filled:
every task of their roles runs in check mode and every template renders
(in `ha`, grafana's only: its datasources are what the topology changes).

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
  DEPLOY_TOPOLOGY     `single` (default) or `ha`
  KEEP=1              leave the containers and network up afterwards
"""

import concurrent.futures
import glob
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ANSIBLE_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(ANSIBLE_DIR)
RUN = f"fleet-ansible-{os.getpid()}"
TOPOLOGY = os.environ.get("DEPLOY_TOPOLOGY", "single")
if TOPOLOGY not in ("single", "ha"):
    raise SystemExit(f"DEPLOY_TOPOLOGY={TOPOLOGY!r}: expected `single` or `ha`")
HA = TOPOLOGY == "ha"
# The hosts in the inventory (all but the outsider).
FLEET = ["app", "app2", "monitoring", "monitoring2", "tsdb"] if HA else ["app", "monitoring"]
HOSTS = FLEET + ["outsider"]
DOCKER_SOCKET = "/var/run/docker.sock"
DOCKER_ROOT = "/var/lib/docker"
# Written into the app's container: its disk use must show it.
APP_CONTAINER_FILL_MIB = 8
IMAGE = [None]
# The app's container on the Docker Engine (labelled for the shipper's filter).
APP_CONTAINER = f"{RUN}-web"

# Small filesystems (tmpfs, mounted when the host starts) the test fills
# past the disk alert's thresholds, and how full: the app host is a database
# server (group db: critical at 95 %) with one filesystem past that and one
# between 90 % (everyone else's threshold) and 95 %; the monitoring host
# (default thresholds) has one between the two as well.
FILL_MIB = 4
FILLS = {
    "app": {"/srv/db-data": 0.97, "/srv/db-logs": 0.925},
    "monitoring": {"/srv/data": 0.925},
}
# The operator's test receivers for Alertmanager, on this machine's address
# on the test network: Slack's webhook (and the heartbeat's), and mail.
WEBHOOK_PORT = 8080
SMTP_PORT = 2525

# How much shorter every rule's `for:` is in this test (see the docstring).
FOR_DIVISOR = 5
FOR_FLOOR = 60
# keep_firing_for is divided by FOR_DIVISOR too, but kept at least three
# scrape intervals (a missed scrape still does not resolve an alert).
KEEP_FIRING_FLOOR = 15
# Alertmanager's group_interval: a repeated notification would come within
# one, so the checks for repeats wait that long and a little more.
GROUP_INTERVAL = 20 if HA else 10
# The roles the --check run with the loki and grafana groups filled covers.
CHECK_ROLES = ["grafana"] if HA else ["loki", "grafana", "firewall", "prometheus"]

failures = []


T_START = time.monotonic()


def log(msg):
    # Seconds since the start: where a slow run spends its time shows.
    print(f"[ansible-test {time.monotonic() - T_START:4.0f}s] {msg}", flush=True)


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


def duration_seconds(text):
    """A Prometheus duration as the rule files write them (30s, 5m, 1h, 1h30m)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise SystemExit(f"not a duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


def scaled_for(seconds):
    return max(FOR_FLOOR, seconds // FOR_DIVISOR)


def scaled_keep_firing_for(seconds):
    return max(KEEP_FIRING_FLOOR, seconds // FOR_DIVISOR)


def rules_for_test(rule_files, work):
    """The rule files with each `for:` and `keep_firing_for:` scaled
    (FOR_DIVISOR, FOR_FLOOR, KEEP_FIRING_FLOOR); the rest of each file as it
    is. Returns their glob."""
    out = os.path.join(work, "rules")
    os.makedirs(out)
    scale = {"for": scaled_for, "keep_firing_for": scaled_keep_firing_for}
    for src in rule_files:
        lines = []
        for line in open(src).read().split("\n"):
            m = re.match(r"^(\s*)(for|keep_firing_for):\s*(\S+)\s*$", line)
            lines.append(f"{m.group(1)}{m.group(2)}: {scale[m.group(2)](duration_seconds(m.group(3)))}s"
                         if m else line)
        with open(os.path.join(out, os.path.basename(src)), "w") as f:
            f.write("\n".join(lines))
    return os.path.join(out, "*.yml")


def container(name):
    return f"{RUN}-{name}"


def docker_driver():
    """The Engine's storage driver (overlay2, fuse-overlayfs, ...)."""
    return sh("docker", "info", "-f", "{{.Driver}}").stdout.strip()


def start_hosts(image):
    # Fixed addresses (the inventory's fleet_address), so that a host stopped
    # and started again comes back where the others expect it. Docker picks
    # a free subnet; the network is made again with it spelled out, which
    # --ip needs.
    sh("docker", "network", "create", "--driver", "bridge", RUN)
    subnet, gw = sh("docker", "network", "inspect", "-f",
                    "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", RUN).stdout.split()
    sh("docker", "network", "rm", RUN)
    sh("docker", "network", "create", "--driver", "bridge", "--subnet", subnet, "--gateway", gw, RUN)
    net = ipaddress.ip_network(subnet)
    for i, h in enumerate(HOSTS):
        # systemd as PID 1: the host's cgroup tree (v1 with a unified mount),
        # /run and /run/lock as tmpfs. NET_ADMIN for nftables, SYS_ADMIN so
        # systemd can apply the units' sandboxing (mount namespaces).
        # The app host runs containers on this machine's Docker Engine: its
        # socket is bind-mounted where Docker puts it (/var/run is /run, a tmpfs
        # mounted first).
        docker_socket = ["-v", f"{DOCKER_SOCKET}:/run/docker.sock"] if h == "app" else []
        if h == "app":
            # As on a real Docker host, the storage driver's directory under
            # the Engine's root (0710 root) holds the containers' writable
            # layers, and a host's systemd may grant CAP_DAC_READ_SEARCH (the
            # exporter's unit does, for container_fs_usage_bytes): that
            # directory read-only, without the containers' mounts inside it
            # (under /var/lib/docker/, which the filesystem collector leaves
            # out, as on a real host), and the capability.
            layers = f"{DOCKER_ROOT}/{docker_driver()}"
            docker_socket += [
                "--mount", f"type=bind,source={layers},target={layers},"
                           "readonly,bind-nonrecursive=true",
                "--cap-add", "DAC_READ_SEARCH",
            ]
        fills = [a for mp in FILLS.get(h, {}) for a in ("--tmpfs", f"{mp}:size={FILL_MIB}m")]
        sh(
            "docker", "run", "-d", "--name", container(h), "--hostname", h,
            "--network", RUN, "--ip", str(net.network_address + 10 + i),
            "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN",
            "--stop-signal", "SIGRTMIN+3",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs", "/run", "--tmpfs", "/run/lock",
            *docker_socket, *fills,
            image,
        )
    for h in HOSTS:
        wait_for_systemd(h)
        # The image's package lists (build-image.sh) count as updated now, as
        # apt-daily keeps them on a server: the roles' apt tasks
        # (cache_valid_time) install from the image's cache, not the mirror.
        sh("docker", "exec", container(h), "touch", "/var/lib/apt/lists")


def wait_for_systemd(h):
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


def write_inventory(path, addrs, extra_groups, group_vars, app_vars, db_vars):
    """A YAML inventory (JSON is YAML) with the example's groups; the app
    host is also a database server (group db, with db_vars)."""
    def hostvars(h):
        return {"ansible_host": container(h), "fleet_address": addrs[h],
                **(app_vars if h == "app" else {})}

    def group(*hosts):
        return {"hosts": {h: hostvars(h) for h in hosts if h in FLEET}}

    inv = {"all": {
        "vars": group_vars,
        "children": {
            "app_servers": group("app", "app2"),
            "monitoring": group("monitoring", "monitoring2"),
            "storage": group("tsdb"),
            # app in two groups on purpose: the routing trap. Its alerts would
            # carry group=app_servers (the first in alphabetical order) and go
            # to #alerts; db_vars' fleet_group makes them group=db, for the
            # DBAs, and its disks take db's 95 % (step 9 checks both).
            "db": {"hosts": {"app": {}}, "vars": db_vars},
            # ha: two Prometheus replicas, three Alertmanager peers, one store;
            # single: one of each of the first two, no store.
            "prometheus": {"children": {"monitoring": {}}},
            "alertmanager": {"children": {"monitoring": {}, "storage": {}}},
            "victoriametrics": {"children": {"storage": {}}},
            "loki": {"hosts": {"monitoring": {}} if "loki" in extra_groups else {}},
            "grafana": {"hosts": {"monitoring": {}} if "grafana" in extra_groups else {}},
        },
    }}
    with open(path, "w") as f:
        json.dump(inv, f, indent=2)


def playbook(inventory, logfile, *args):
    # profile_tasks: each task's time in the log (and the slowest at the end).
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ANSIBLE_DIR, "ansible.cfg"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")
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


class Reachability:
    """Probes to make, made all at once (a filtered port costs its whole
    timeout) and then checked in the order they were listed."""

    def __init__(self):
        self.probes = []

    def expect(self, src, ip, port, want, what):
        """src: a host's name, or None for the operator (this machine)."""
        self.probes.append((src, ip, port, want, what))

    def check_all(self):
        def one(p):
            src, ip, port, _, _ = p
            return probe_local(ip, port) if src is None else probe_from(src, ip, port)
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(one, self.probes))
        for (_, _, _, want, what), g in zip(self.probes, got):
            check(g == want, what + ("" if g == want else f" (got {g})"))
        self.probes = []


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


class WebhookReceiver:
    """Slack's incoming webhook (and the heartbeat webhook) as the operator's
    test receiver: an HTTP server on this machine's address on the test
    network recording every JSON post with its path. Alertmanager posts
    every Slack channel to the one webhook URL with the channel in the body,
    as Slack has it."""

    def __init__(self, host, port):
        import http.server
        import threading
        posts = self.posts = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"unparsed": body.decode(errors="replace")}
                posts.append({"at": time.time(), "path": self.path, "body": doc,
                              "from": self.client_address[0]})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def slack(self):
        """Slack messages as a user reads them: channel, title, text."""
        out = []
        for p in list(self.posts):
            b = p["body"]
            if p["path"] == "/heartbeat" or not isinstance(b, dict):
                continue
            for a in b.get("attachments") or [{}]:
                out.append({"at": p["at"], "path": p["path"], "channel": b.get("channel", ""),
                            "from": p.get("from", ""),
                            "title": a.get("title", ""), "text": a.get("text", ""),
                            "color": a.get("color", "")})
        return out

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """A mail server for the test (the SMTP a smarthost speaks: EHLO, MAIL,
    RCPT, DATA; no TLS, no AUTH), recording each message with its envelope."""

    def __init__(self, host, port):
        import email
        import email.policy
        import socketserver
        import threading
        messages = self.messages = []

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, text):
                self.wfile.write(text.encode() + b"\r\n")

            def handle(self):
                self.reply("220 fleet-test ESMTP")
                sender, rcpts = None, []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode(errors="replace").rstrip("\r\n")
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.reply("250-fleet-test")
                        self.reply("250 8BITMIME")
                    elif verb == "HELO":
                        self.reply("250 fleet-test")
                    elif verb == "MAIL":
                        sender, rcpts = cmd[10:].strip(), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        rcpts.append(cmd[8:].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = []
                        while True:
                            d = self.rfile.readline()
                            if not d or d in (b".\r\n", b".\n"):
                                break
                            data.append(d[1:] if d.startswith(b"..") else d)
                        msg = email.message_from_bytes(b"".join(data), policy=email.policy.default)
                        body = []
                        for part in msg.walk():
                            if part.get_content_maintype() == "text":
                                body.append(part.get_content())
                        messages.append({"at": time.time(), "from": sender, "to": list(rcpts),
                                         "subject": str(msg.get("Subject", "")),
                                         "body": "\n".join(body)})
                        self.reply("250 OK queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


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
           "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
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
    # a memory limit (the Containers dashboard shows both). Its lines start
    # with a date, as the example's multiline stage expects of a record
    # (log-shipper/examples/docker.yaml): undated lines are joined to the
    # record before and leave only after 3 s without a line.
    sh("docker", "run", "-d", "--name", APP_CONTAINER, "--label", f"fleet-test={RUN}",
       "--memory", "64m", "--health-cmd", "true", "--health-interval", "2s",
       "--entrypoint", "/bin/sh", IMAGE[0], "-c",
       "i=0; while true; do i=$((i+1)); echo \"$(date -u +%Y-%m-%dT%H:%M:%S) web container line $i\"; sleep 2; done")
    sh("docker", "exec", APP_CONTAINER, "dd", "if=/dev/zero", "of=/var/tmp/fill", "bs=1M",
       f"count={APP_CONTAINER_FILL_MIB}")
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
    ("alerts-probes.json", "Pending alerts"):
        ("an alert is pending only while it waits out its `for:`; with the test's shortened `for:` "
         "(FOR_DIVISOR) the allowed alerts may all be firing by then", False),
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
        # Pending only: one that fires fails the test.
        ("NodeExporterCollectorFailing", {"alertstate": "pending"}, "an exporter starved of CPU on this "
         "loaded 2-core machine misses its collectors' deadline for a scrape (all of a host's collectors at "
         "once, seen at load 26); its `for:` keeps it from firing"),
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


class DiskReader:
    """The hosts see this machine's disks. One nobody reads has rate ratios
    such as 'Disk Average Wait Time' at 0/0, NaN (with node_exporter too):
    this reads past the page cache every second, from its start (early in
    the checks, so that a rate window of reads is there when the dashboards'
    queries are asked) until stop()."""

    def __init__(self, work):
        self.sample = os.path.join(work, "disk-reads")
        with open(self.sample, "wb") as f:
            f.write(os.urandom(1 << 20))
        self.done = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.done.wait(1):
            subprocess.run(["dd", f"if={self.sample}", "of=/dev/null", "bs=64k", "iflag=direct"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        self.done.set()
        self.thread.join()


def check_dashboards(prom, receiver, work, reader):
    """(a) every PromQL query of every dashboard returns data through the
    deployed Prometheus, but those of NO_DATA_IN_CONTAINER; (b) every Loki
    query selects streams the shippers pushed, with labels they carry.
    `reader` (a DiskReader) is stopped once the queries are answered."""
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
    # A rate window ($__rate_interval, 4 scrape intervals) and a scrape of reads.
    time.sleep(max(0.0, reader.started + 25 - time.monotonic()))
    try:
        r = sh(*cmd, check_rc=False)
    finally:
        reader.stop()
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
                    and all(dict(a["labels"], alertstate=a["state"]).get(k) == v for k, v in labels.items())),
                   None)
        # The Engine is this machine's: its other containers are not the test's.
        if why is None and a["labels"].get("name") and not a["labels"]["name"].startswith(RUN):
            why = "a container of another user of this machine's Docker Engine"
        log(f"  alert {a['state']}: {a['labels']}" + (f" (allowed: {why})" if why else ""))
        if why is None:
            unexpected.append(f"{a['labels'].get('alertname')} {a['labels'].get('instance', '')}".strip())
    check(not unexpected, f"(c) no alert pending or firing on the healthy deployment but "
          f"{sorted({name for name, _, _ in allowed})} (unexpected: {sorted(set(unexpected))})")


SCRAPE_SECONDS = 5
VM_PORT = 8428
# Issue 19's 2 minutes: longer than TargetDown's `for:` here, so the store's
# loss is notified (once) as well as buffered in the replicas' WAL.
STORE_OUTAGE = 120


def cluster_peers(addr):
    """The Alertmanager at addr: its cluster status and the addresses
    (without port) of the peers it sees."""
    status = http_json(f"http://{addr}:9093/api/v2/status")[1]
    return status["cluster"]["status"], {p["address"].rsplit(":", 1)[0] for p in status["cluster"]["peers"]}


def check_ha_deployment(addrs):
    """Issue 19's deployment: three Alertmanager peers in one cluster, two
    Prometheus replicas each with its replica label sending to every peer
    and writing to VictoriaMetrics."""
    peers = {addrs[h] for h in ("monitoring", "monitoring2", "tsdb")}
    for h in ("monitoring", "monitoring2", "tsdb"):
        got = eventually(f"cluster seen from {h}", lambda: (lambda c: c if len(c[1]) == 3 else None)(
            cluster_peers(addrs[h])))
        status, seen = got or (None, set())
        check(status == "ready" and seen == peers,
              f"Alertmanager on {h} is one of a ready cluster of the 3 peers ({seen})")
    for h in ("monitoring", "monitoring2"):
        prom = f"http://{addrs[h]}:9090"
        am = eventually(f"alertmanagers of {h}", lambda: (lambda a: a if len(a) == 3 else None)(
            http_json(f"{prom}/api/v1/alertmanagers")[1]["data"]["activeAlertmanagers"]))
        urls = sorted(a["url"] for a in am or [])
        check(bool(am) and {u.split("//")[1].split(":")[0] for u in urls} == peers,
              f"replica {h} sends alerts to every peer ({urls})")
        _, cfg = http_json(f"{prom}/api/v1/status/config")
        check(f"replica: {h}" in cfg["data"]["yaml"] and f"{addrs['tsdb']}:{VM_PORT}/api/v1/write" in cfg["data"]["yaml"],
              f"replica {h} carries external label replica={h} and writes to VictoriaMetrics on tsdb")
        _, flags = http_json(f"{prom}/api/v1/status/flags")
        check(flags["data"].get("storage.tsdb.retention.time") == "1h",
              f"replica {h} keeps 1h locally ({flags['data'].get('storage.tsdb.retention.time')})")
        check(flags["data"].get("rules.alert.resend-delay") == "20s",
              f"replica {h} sends firing alerts again after 20s ({flags['data'].get('rules.alert.resend-delay')})")


def check_ha_deduplicated(addrs):
    """VictoriaMetrics keeps one copy of the replicas' identical series
    (checked once it has half a minute of them: late in the healthy checks)."""
    vm = f"http://{addrs['tsdb']}:{VM_PORT}"
    # Both replicas scrape app; VictoriaMetrics has one series, no replica
    # label, and one sample per scrape interval (deduplicated), in half a
    # minute (a longer window only waits longer for the replicas' first samples).
    # (Its instant queries trail by -search.latencyOffset, 30 s: ask 40 s back.)
    window = 30
    q = f'up{{job="node",instance="app"}}[{window}s]'
    per_window = window // SCRAPE_SECONDS
    got = eventually("half a minute of app's up in VictoriaMetrics", lambda: (lambda r: r if r and len(
        r[0]["values"]) >= per_window - 1 else None)(vm_query(vm, q, at=f"{time.time() - 40:.3f}")),
        timeout=120)
    check(bool(got) and len(got) == 1 and "replica" not in got[0]["metric"],
          f"VictoriaMetrics holds app's `up` once, without a replica label ({[g['metric'] for g in got or []]})")
    if got:
        n = len(got[0]["values"])
        check(n <= per_window + 1,
              f"the two replicas' samples are deduplicated: {n} samples in {window}s at a {SCRAPE_SECONDS}s "
              f"interval (without deduplication about {2 * per_window})")


def check_ha_firewall(addrs, reach):
    """Gossip between the three peers only; VictoriaMetrics open to the
    replicas and the operator only (probes added to `reach`)."""
    mon = addrs["monitoring"]
    for src, dst in (("monitoring", "monitoring2"), ("tsdb", "monitoring"), ("monitoring2", "tsdb")):
        reach.expect(src, addrs[dst], 9094, "open", f"Alertmanager peer {src} reaches {dst}:9094 (gossip)")
    reach.expect("app2", mon, 9094, "filtered", "app2 (no peer) cannot reach monitoring:9094")
    ruleset = sh("docker", "exec", container("monitoring"), "nft", "list", "table", "inet",
                 "fleet_firewall").stdout
    gossip = {}
    for line in ruleset.splitlines():
        m = re.search(r"ip saddr \{?([^}]*?)\}? (tcp|udp) dport \{? ?9094 ?\}? accept", line)
        if m:
            gossip.setdefault(m.group(2), set()).update(a.strip() for a in m.group(1).split(","))
    peers = {addrs["monitoring2"], addrs["tsdb"]}
    check(gossip == {"tcp": peers, "udp": peers},
          f"monitoring's firewall opens 9094 over TCP and UDP to the other peers {sorted(peers)} only ({gossip})")
    # VictoriaMetrics: the replicas write, the operator (and Grafana) read.
    tsdb = addrs["tsdb"]
    for h in ("monitoring", "monitoring2"):
        reach.expect(h, tsdb, 8428, "open", f"Prometheus replica {h} reaches tsdb:8428")
    reach.expect(None, tsdb, 8428, "open", "the operator reaches tsdb:8428")
    for h in ("app", "outsider"):
        reach.expect(h, tsdb, 8428, "filtered", f"{h} cannot reach tsdb:8428")


def vm_query(base, query, at=None):
    """An instant query against a Prometheus-compatible API (range vectors
    return raw samples)."""
    url = f"{base}/api/v1/query?query={urllib.request.quote(query)}" + (f"&time={at}" if at else "")
    return http_json(url)[1]["data"]["result"]


def largest_gap(samples):
    ts = [float(t) for t, _ in samples]
    return max((b - a for a, b in zip(ts, ts[1:])), default=None)


def stop_store():
    """VictoriaMetrics stops (the service: the host's Alertmanager peer stays up)."""
    sh("docker", "exec", container("tsdb"), "systemctl", "stop", "victoria-metrics")
    return time.time()


def check_store_gap(addrs, t_stop, t_start):
    """Once it is back, the replicas' WAL has filled the outage: app's `up`
    has no hole longer than one scrape interval from before the stop to
    after the start."""
    vm = f"http://{addrs['tsdb']}:{VM_PORT}"
    end = t_start + 30
    window = int(end - (t_stop - 60))

    def caught_up():
        if time.time() < end + 35:  # -search.latencyOffset
            return None
        r = vm_query(vm, f'up{{job="node",instance="app"}}[{window}s]', at=f"{end:.3f}")
        return r if r and float(r[0]["values"][-1][0]) > end - 2 * SCRAPE_SECONDS else None
    got = eventually("VictoriaMetrics caught up after the outage", caught_up, timeout=150)
    gap = largest_gap(got[0]["values"]) if got else None
    first = float(got[0]["values"][0][0]) if got else 0
    # VictoriaMetrics keeps one sample per 5 s window (deduplication), the
    # later of the replicas': where one replica's samples are missing
    # (monitoring2 stopped) the kept one moves by their scrape offsets, so
    # two samples can be up to two intervals apart with none lost. An
    # outage not filled from the WAL leaves 24 intervals.
    check(gap is not None and first <= t_stop - 50 and gap < 2 * SCRAPE_SECONDS,
          f"VictoriaMetrics down {t_start - t_stop:.0f}s: the range from a minute before to 30s after, "
          f"queried from it, has no hole larger than one scrape interval ({SCRAPE_SECONDS}s; every gap under "
          f"two intervals): largest gap {'none' if gap is None else f'{gap:.1f}s'} over {len(got[0]['values']) if got else 0} samples")


def check_store_paged_once(webhooks):
    """The store's outage, longer than TargetDown's `for`, reaches Slack once
    (not once per replica or per peer) and is resolved once."""
    e = {"channel": "#alerts", "labels": {"alertname": "TargetDown", "instance": "tsdb", "job": "victoriametrics"}}
    got = eventually("TargetDown of VictoriaMetrics resolved in Slack", lambda: slack_hits(webhooks, e, "resolved"),
                     timeout=60)
    # A repeat would come at the next group interval after the resolution
    # (which is minutes old by now, unless it just came).
    last = max((m["at"] for m, _ in got or []), default=time.time())
    time.sleep(max(0.0, last + GROUP_INTERVAL + 2 - time.time()))
    fired, resolved = slack_hits(webhooks, e, "firing"), slack_hits(webhooks, e, "resolved")
    check(once(fired) and len(resolved) == 1,
          f"(HA) VictoriaMetrics down {STORE_OUTAGE}s: TargetDown of it in #alerts once, resolved once "
          f"({len(fired)} firing, {len(resolved)} resolved)")


def check_long_term_query(addrs, check_log):
    """Samples older than the replicas' 1h retention, written into
    VictoriaMetrics with old timestamps (its import API), are answered
    through the URL of Grafana's VictoriaMetrics datasource as rendered by
    the grafana role; the replicas have nothing there."""
    lines = [l[1:] if l.startswith("+") else l for l in check_log.splitlines()]
    text = "\n".join(lines)
    m = re.search(r"uid: victoriametrics\s*\n\s*type: prometheus\s*\n\s*access: proxy\s*\n\s*url: (\S+)", text)
    check(bool(m) and m.group(1) == f"http://{addrs['tsdb']}:{VM_PORT}",
          f"Grafana's VictoriaMetrics datasource points at tsdb ({m.group(1) if m else 'not rendered'})")
    replicas = re.findall(r"name: Prometheus (\S+)\s*\n\s*uid: prometheus-\S+\s*\n\s*type: prometheus\s*\n"
                          r"\s*access: proxy\s*\n\s*url: (\S+)", text)
    check(sorted(replicas) == [(h, f"http://{addrs[h]}:9090") for h in ("monitoring", "monitoring2")],
          f"Grafana gets a datasource per Prometheus replica ({replicas})")
    if not m:
        return
    ds = m.group(1)
    # Two days ago, one sample a minute for an hour: relative to now, never a date.
    # On a whole minute, as Grafana's query steps are (VictoriaMetrics aligns
    # a range query's start to its step).
    start = (int(time.time()) - 2 * 86400) // 60 * 60
    ts = [(start + 60 * i) * 1000 for i in range(60)]
    body = json.dumps({"metric": {"__name__": "fleet_history_test", "instance": "app", "job": "node"},
                       "values": [float(i) for i in range(60)], "timestamps": ts})
    urllib.request.urlopen(urllib.request.Request(f"http://{addrs['tsdb']}:{VM_PORT}/api/v1/import",
                                                  data=body.encode()), timeout=10).read()

    def old_range(base):
        _, b = http_json(f"{base}/api/v1/query_range?query=fleet_history_test&start={start}"
                         f"&end={start + 3540}&step=60")
        return b["data"]["result"]
    got = eventually("the old samples through the datasource", lambda: old_range(ds), timeout=30)
    values = [float(v) for _, v in got[0]["values"]] if got else []
    check(len(values) == 60 and values[0] == 0 and values[-1] == 59,
          f"a query two days back (older than the replicas' 1h) is answered through Grafana's "
          f"VictoriaMetrics datasource: {len(values)} of 60 samples")
    check(old_range(f"http://{addrs['monitoring']}:9090") == [],
          "the same range through the Prometheus replica is empty (past its local retention)")


def prom_query(prom, query):
    _, body = http_json(f"{prom}/api/v1/query?query={urllib.request.quote(query)}")
    return body["data"]["result"]


def fill(h, mountpoint, share):
    """Fills one of FILLS' filesystems to `share` of its size."""
    blocks = int(FILL_MIB * 256 * share)
    sh("docker", "exec", container(h), "dd", "if=/dev/zero", f"of={mountpoint}/fill", "bs=4096",
       f"count={blocks}", "status=none")


def slack_alerts(msg):
    """The alerts of one Slack message, as alert-rules/alertmanager/templates/
    slack.tmpl writes them: blocks apart by a blank line, each with its status
    line, summary, `*Alert:* name | *Severity:* s | *Instance:* i | *label:* v`
    and `*Level:* before -> after`."""
    out = []
    for block in msg["text"].split("\n\n"):
        lines = block.strip("\n").splitlines()
        alert_line = next((l for l in lines if l.startswith("*Alert:*")), None)
        if not alert_line:
            continue
        labels = {}
        for part in alert_line.split(" | "):
            m = re.match(r"\*([^*]+):\* (.*)$", part.strip())
            if m:
                key = {"Alert": "alertname", "Severity": "severity", "Instance": "instance"}.get(m.group(1), m.group(1))
                labels[key] = m.group(2)
        out.append({"status": "resolved" if "*RESOLVED*" in lines[0] else "firing", "labels": labels,
                    "level": next((l[len("*Level:* "):] for l in lines if l.startswith("*Level:* ")), None),
                    "block": block})
    return out


def slack_hits(webhooks, exp, status, elsewhere=False):
    """Slack messages carrying exp's alert in this status: in exp's channel,
    or (elsewhere) in any other."""
    hits = []
    for m in webhooks.slack():
        if (m["channel"] == exp["channel"]) == elsewhere:
            continue
        for a in slack_alerts(m):
            if a["status"] == status and all(a["labels"].get(k) == v for k, v in exp["labels"].items()):
                hits.append((m, a))
                break
    return hits


def mail_hits(mail, exp, status, to=None):
    """Mails to `to` (default exp's address) about exp's filesystem in this
    status (Alertmanager's subject from the template's title)."""
    tag = "[FIRING:" if status == "firing" else "[RESOLVED]"
    what = f"{exp['labels']['alertname']} ({exp['labels']['severity']})"
    return [m for m in list(mail.messages) if (to or exp["mail"]) in m["to"]
            and m["subject"].startswith(tag) and what in m["subject"]
            and exp["labels"]["mountpoint"] in m["body"]]


def once(hits):
    """One Slack message carries the alert; or several, each with another
    set of alerts, because alerts the test did not cause joined or left its
    group (alertname, job): another user's container on this machine's
    Docker Engine, the machine's own disk (allowed_alerts). A message with
    the same alerts as an earlier one is a repeat."""
    if len(hits) <= 1:
        return len(hits) == 1
    sets = [frozenset((a["status"], tuple(sorted(a["labels"].items()))) for a in slack_alerts(m))
            for m, _ in hits]
    if len(set(sets)) == len(sets):
        log(f"  {len(hits)} messages carry the alert, each with other alerts of its group: "
            f"{[m['text'] for m, _ in hits]}")
        return True
    return False


def mail_once(got):
    """As once(), for mails: one, or several that differ (other alerts of the
    group); the same mail twice is a repeat."""
    return len(got) == 1 or (len(got) > 1 and len({(m["subject"], m["body"]) for m in got}) == len(got))


def faults_notified_by(t_fault):
    """When (monotonic) the faults' alerts must have been notified: the
    rules' `for` (5 minutes for the disks and the container, scaled) runs
    from the fault; then group_wait."""
    return t_fault + scaled_for(5 * 60) + 120


def wait_notified(webhooks, mail, expected, status, until):
    """Waits until each of expected has reached its Slack channel (and its
    mail) in this status, or until `until` (monotonic); what is missing."""
    while True:
        left = []
        for e in expected:
            if not slack_hits(webhooks, e, status):
                left.append(f"{e['what']}: Slack {e['channel']}")
            if e.get("mail") and not mail_hits(mail, e, status):
                left.append(f"{e['what']}: mail to {e['mail']}")
        if not left or time.monotonic() > until:
            return left
        time.sleep(2)


def check_notifications(prom, webhooks, mail, expected, t_fault, undo, while_firing):
    """(d) with a disk filled past its group's threshold, a container killed
    and the down probe target, each expected alert reaches its receivers
    (Slack channel, mail) once; undone, each is resolved once, with the
    level change the template promises; Watchdog never reaches Slack or mail."""
    deadline = faults_notified_by(t_fault)

    # Issue 19 (ha): once an alert is notified, a replica and a peer are
    # lost while the faults' rules run their `for`, so that those alerts too
    # are notified without them; they are started again, the app's disks
    # are freed, and the other faults stay until the peer's start delay is
    # over (`rejoined` checks after).
    while time.monotonic() < deadline and not any(slack_hits(webhooks, e, "firing") for e in expected):
        time.sleep(1)
    # The app host's other filesystem is past 90 % (everyone else's
    # threshold) but not its own 95 %: it warns (pending, 85 %), it does not
    # page. (Both forms are evaluated together: a critical would come with
    # the warning.) Checked before while_firing, which frees the app's disks (ha).
    q = 'ALERTS{alertname="NodeFilesystemAlmostFull",instance="app",mountpoint="/srv/db-logs"}'
    other = eventually("app's /srv/db-logs pending", lambda: prom_query(prom, q), timeout=60) or []
    check(bool(other) and all(a["metric"].get("severity") == "warning" for a in other),
          "(d) app's /srv/db-logs at 92.5 %: NodeFilesystemAlmostFull warning only, not critical "
          f"(the db group's own 95 %) ({[(a['metric'].get('severity'), a['metric'].get('alertstate')) for a in other]})")
    rejoined = while_firing()
    left = wait_notified(webhooks, mail, expected, "firing", deadline)
    t_fired = time.monotonic()
    t_fault_wall = time.time() - (t_fired - t_fault)
    came = [min(m["at"] for m, _ in hits) for hits in (slack_hits(webhooks, e, "firing") for e in expected) if hits]
    log(f"notifications of the faults all there {max(came, default=t_fault_wall) - t_fault_wall:.0f}s after them"
        + (f", but for {left}" if left else ""))

    # Duplicates would come at the next group interval.
    time.sleep(max(0.0, max(came, default=0.0) + GROUP_INTERVAL + 10 - time.time()))
    for e in expected:
        hits = slack_hits(webhooks, e, "firing")
        check(once(hits), f"(d) {e['what']}: one Slack message in {e['channel']} "
              f"({len(hits)}: {[m['title'] for m, _ in hits]})")
        if hits:
            block = hits[0][1]["block"]
            check(all(t in block for t in e["text"]),
                  f"(d) {e['what']}: the message says {e['text']} ({block!r})")
        wrong = slack_hits(webhooks, e, "firing", elsewhere=True)
        check(not wrong, f"(d) {e['what']}: in no other Slack channel ({[m['channel'] for m, _ in wrong]})")
        if e.get("mail"):
            got = mail_hits(mail, e, "firing")
            check(mail_once(got) and all(t in got[0]["body"] for t in e["text"]),
                  f"(d) {e['what']}: one mail to {e['mail']} saying {e['text']} "
                  f"({[(m['subject'], m['to']) for m in got]})")
            others = [m for m in list(mail.messages) if e["mail"] not in m["to"]
                      and e["labels"]["mountpoint"] in m["body"]]
            check(not others, f"(d) {e['what']}: no mail to anyone else ({[m['to'] for m in others]})")
    stray = [s for s in
             [mb["channel"] for mb in webhooks.slack() if "Watchdog" in mb["title"] + mb["text"]]
             + [m["subject"] for m in list(mail.messages) if "Watchdog" in m["subject"]]]
    beats = [p for p in list(webhooks.posts) if p["path"] == "/heartbeat"
             and any(a.get("labels", {}).get("alertname") == "Watchdog" for a in p["body"].get("alerts", []))]
    check(bool(beats) and not stray, f"(d) Watchdog goes to the heartbeat webhook ({len(beats)} posts), "
          f"never to Slack or mail ({stray})")

    # Undone: the disks freed (in ha the app's already are), the container
    # started, the probe answered.
    # Resolved after the rules' keep_firing_for (scaled: KEEP_FIRING_FLOOR).
    t_undo = time.monotonic()
    undo()
    left = wait_notified(webhooks, mail, expected, "resolved", t_undo + 180)
    log(f"resolved notifications arrived {time.monotonic() - t_undo:.0f}s after the fix"
        + (f" but for {left}" if left else ""))
    # monitoring2 back (ha): waits for it to rejoin; the checks of what was
    # notified are made after the wait for repeats.
    notified_once = rejoined()
    time.sleep(GROUP_INTERVAL + 10)  # repeats would come at the next group interval
    for e in expected:
        hits = slack_hits(webhooks, e, "resolved")
        sev = e["labels"]["severity"]
        check(len(hits) == 1 and hits[0][1]["level"] == f"{sev} -> fine",
              f"(d) {e['what']}: resolved once in {e['channel']}, '*Level:* {sev} -> fine' "
              f"({[a['level'] for _, a in hits]})")
        again = slack_hits(webhooks, e, "firing")
        check(once(again), f"(d) {e['what']}: still one firing message after all ({len(again)})")
        if e.get("mail"):
            got = mail_hits(mail, e, "resolved")
            check(mail_once(got), f"(d) {e['what']}: one resolved mail to {e['mail']} "
                  f"({[m['subject'] for m in got]})")
    notified_once()


def log_timeline(addrs, webhooks, t0):
    """When a notification came more than once: every Slack message (which
    peer sent it, when) and, per replica, when it had the alerts firing, so
    that the log shows where a repeat came from."""
    names = {a: h for h, a in addrs.items()}
    log("Slack messages (seconds since the faults, sending peer, channel, title):")
    for m in webhooks.slack():
        log(f"  {m['at'] - t0:7.1f} {names.get(m['from'], m['from']):12} {m['channel']:8} {m['title']}")
    end = time.time()
    for h in ("monitoring", "monitoring2"):
        if h not in addrs:
            continue
        try:
            _, body = http_json(f"http://{addrs[h]}:9090/api/v1/query_range?query="
                                + urllib.request.quote('ALERTS{alertname=~"NodeFilesystemAlmostFull|'
                                                       'ContainerDown|ProbeFailing|TargetDown"}')
                                + f"&start={t0 - 60:.0f}&end={end:.0f}&step=5")
        except (OSError, ValueError) as e:
            log(f"  {h}: no answer ({e})")
            continue
        for r in body["data"]["result"]:
            ts = [float(t) - t0 for t, _ in r["values"]]
            spans, start = [], ts[0] if ts else None
            for a, b in zip(ts, ts[1:] + [None]):
                if b is None or b - a > 6:
                    spans.append(f"{start:.0f}..{a:.0f}")
                    start = b
            m = r["metric"]
            log(f"  {h} {m.get('alertstate')} {m.get('alertname')} {m.get('instance', '')} {m.get('job', '')} "
                f"{m.get('mountpoint', '')}: {spans}")


def lose_replica_and_peer(addrs, webhooks, back, on_start):
    """While an alert fires (the probe's) and the faults' rules run their
    `for`: monitoring2 (Prometheus replica 2 and Alertmanager peer 2) is
    stopped, as a container. The alert its loss raises on the surviving replica (TargetDown of its exporter, after its
    `for`; it mutes the host's other alerts, TargetDown of its other jobs
    included) reaches Slack once through the two remaining peers. Then it is
    started again; on_start() runs then (it undoes some of the faults), and
    the other faults stay until its Alertmanager's start delay is over and a
    group interval more; the function returned checks that it rejoined the cluster, that its Prometheus sends
    to every peer again, that TargetDown is resolved once, that it notified
    nothing during its start delay, and that nothing was notified twice."""
    lost = "monitoring2"
    # What the faults raised: notified (or muted) before the loss, so never
    # notified firing again, above all not by the restarted peer.
    fault_alerts = {"NodeFilesystemAlmostFull", "ContainerDown", "ProbeFailing"}
    targets_down = [{"what": f"TargetDown of {lost}'s exporter", "channel": "#alerts",
                     "labels": {"alertname": "TargetDown", "instance": lost, "job": "node"}}]
    muted = [{"channel": "#alerts", "labels": {"alertname": "TargetDown", "instance": lost, "job": job}}
             for job in ("log-shipper", "alertmanager", "prometheus")]
    before = len(webhooks.slack())
    t_kill = time.monotonic()
    sh("docker", "stop", container(lost))
    log(f"{lost} stopped (Prometheus replica and Alertmanager peer) while an alert fires")
    deadline = t_kill + scaled_for(2 * 60) + 120
    while time.monotonic() < deadline and not all(slack_hits(webhooks, e, "firing") for e in targets_down):
        time.sleep(2)
    log(f"TargetDown notifications {time.monotonic() - t_kill:.0f}s after the stop")
    # (Whether it came once is checked at the end, long after any repeat.)
    t_start, t_start_wall = time.monotonic(), time.time()
    sh("docker", "start", container(lost))
    log(f"{lost} started again")
    back.set()
    on_start()
    # Its Alertmanager notifies nothing until its start delay (the role's
    # alertmanager_start_delay_seconds) is over; the faults left stay until a
    # group interval after that (its first flushes), so that what it notifies
    # then is checked too.
    wait_for_systemd(lost)
    delay_end = eventually(f"{lost}'s Alertmanager says its start delay", lambda: start_delay_end(addrs[lost]))
    check(delay_end is not None, f"(HA) {lost}'s Alertmanager runs with its start delay's window")
    if delay_end:
        log(f"{lost}'s Alertmanager mutes until {delay_end - t_start_wall:.0f}s after its start; "
            f"the faults left stay {GROUP_INTERVAL + 10}s longer")
        time.sleep(max(0.0, delay_end + GROUP_INTERVAL + 10 - time.time()))
    return lambda: rejoined(addrs, webhooks, lost, targets_down, muted, t_start, before,
                            lambda: not_again(webhooks, lost, fault_alerts, t_start_wall),
                            lambda: quiet_at_start(webhooks, addrs[lost], lost, t_start_wall, delay_end))


def start_delay_end(addr):
    """When the window of the start-delay time interval in the config the
    peer at addr runs ends (UTC), or None."""
    import datetime
    import yaml
    try:
        config = yaml.safe_load(http_json(f"http://{addr}:9093/api/v2/status")[1]["config"]["original"])
        last = next(t for t in config.get("time_intervals") or [] if t["name"] == "start-delay")["time_intervals"][-1]
        day = datetime.datetime(int(last["years"][0]), int(last["months"][0]), int(last["days_of_month"][0]),
                                tzinfo=datetime.timezone.utc)
        hh, mm = last["times"][0]["end_time"].split(":")
    except (OSError, ValueError, KeyError, IndexError, StopIteration, TypeError, yaml.YAMLError):
        return None
    end = day + datetime.timedelta(hours=int(hh), minutes=int(mm))
    return end.timestamp() if end.year > 1970 else None


def quiet_at_start(webhooks, addr, lost, since, until):
    """The restarted peer sent nothing to Slack before its start delay ended."""
    early = [(round(m["at"] - since), m["title"]) for m in webhooks.slack()
             if m["from"] == addr and since <= m["at"] < (until or 0)]
    check(not early, f"(HA) {lost}'s Alertmanager notified nothing during its start delay ({early})")


def not_again(webhooks, lost, fault_alerts, since):
    """Once `lost` is started again, no message about what the faults raised
    is a repeat: its Alertmanager knows no alerts then and hears them again
    from Prometheus' re-sends; were it to notify before it had them all, it
    would send a group with fewer alerts, or a warning whose critical (its
    inhibitor) had not arrived yet (Alertmanager issues #2628, #4064). A message that
    brings an alert new to its group, firing or resolved, is no repeat (the
    app's exporter sees `lost`'s own container exit on this machine's Docker
    Engine; a warning muted by its critical is resolved with it, unmuted)."""
    def key(a):
        return tuple(a["labels"].get(k, "") for k in ("alertname", "instance", "severity", "mountpoint", "name"))

    known, known_resolved, again = set(), set(), []
    for m in webhooks.slack():
        alerts = slack_alerts(m)
        keys = {key(a) for a in alerts if a["status"] == "firing"}
        resolved = {key(a) for a in alerts if a["status"] == "resolved"}
        if m["at"] >= since and any(k[0] in fault_alerts for k in keys):
            # A warning whose critical was notified was muted by it.
            muted = {k for k in keys if k[2] == "warning" and (k[:2] + ("critical",) + k[3:]) in known}
            if muted or not (keys - known or resolved - known_resolved):
                again.append((round(m["at"] - since), m["from"], m["channel"], m["title"],
                              sorted(keys), sorted(resolved), sorted(muted)))
        known |= keys
        known_resolved |= resolved
    check(not again, f"(HA) once {lost} is started again, nothing the faults raised is notified firing again, "
          f"nothing muted before is notified ({again})")


def rejoined(addrs, webhooks, lost, targets_down, muted, t_start, before, not_again_check, quiet_check):
    wait_for_systemd(lost)
    peers = {addrs[h] for h in ("monitoring", "monitoring2", "tsdb")}
    for h in ("monitoring", "monitoring2", "tsdb"):
        got = eventually(f"{lost} rejoined, seen from {h}", lambda: cluster_peers(addrs[h])[1] == peers or None,
                         timeout=120)
        check(bool(got), f"(HA) {lost}'s Alertmanager rejoined: {h} sees the 3 peers again")
    am = eventually(f"{lost}'s Prometheus sends again", lambda: (lambda a: a if len(a) == 3 else None)(
        http_json(f"http://{addrs[lost]}:9090/api/v1/alertmanagers")[1]["data"]["activeAlertmanagers"]))
    check(bool(am), f"(HA) {lost}'s Prometheus is back and sends to the 3 peers")
    while time.monotonic() < t_start + 150 and not all(slack_hits(webhooks, e, "resolved") for e in targets_down):
        time.sleep(2)
    log(f"TargetDown resolved {time.monotonic() - t_start:.0f}s after {lost} was started")
    return lambda: rejoined_once(webhooks, lost, targets_down, muted, before, not_again_check, quiet_check)


def rejoined_once(webhooks, lost, targets_down, muted, before, not_again_check, quiet_check):
    """After the wait for repeats: what monitoring2's loss raised was
    notified once and resolved once, nothing else fired again, and the
    restarted peer was quiet during its start delay."""
    not_again_check()
    quiet_check()
    for e in targets_down:
        hits = slack_hits(webhooks, e, "firing")
        check(once(hits), f"(HA) with a replica and a peer down, new alert {e['what']}: one Slack message in "
              f"{e['channel']} ({len(hits)})")
        check(len(slack_hits(webhooks, e, "resolved")) == 1,
              f"(HA) {e['what']}: resolved once when {lost} is back")
    for e in muted:
        n = len(slack_hits(webhooks, e, "firing"))
        check(n <= 1, f"(HA) TargetDown of {lost}'s {e['labels']['job']}: muted by its exporter's, or "
              f"notified once at most ({n})")
    with_replica = [m["text"][:200] for m in webhooks.slack() if "*replica:*" in m["text"]]
    check(not with_replica, f"(HA) no Slack message carries a replica label ({with_replica})")
    log(f"{len(webhooks.slack()) - before} Slack messages while {lost} was away and back")


def cleanup():
    if os.environ.get("KEEP") == "1":
        log(f"KEEP=1: containers {RUN}-* and network {RUN} left up")
        return
    sh("docker", "rm", "-f", "-v", *(container(h) for h in HOSTS + ["web"]), check_rc=False)
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
    webhooks = mail = None
    disk_reader = None
    try:
        start_hosts(image)
        addrs = {h: address(h) for h in HOSTS}
        gw = gateway()
        log(f"addresses {addrs}, operator (this machine) {gw}")
        # The operator's Slack (and heartbeat) webhook and mail server, up
        # before the deployment: the down probe target fires minutes after it.
        webhooks = WebhookReceiver(gw, WEBHOOK_PORT)
        mail = SmtpReceiver(gw, SMTP_PORT)

        group_vars = {
            "ansible_connection": "community.docker.docker",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_become": False,
            "operator_cidrs": [f"{gw}/32"],
            "node_exporter_binary_src": stripped_copy(node_exporter, work),
            "prometheus_scrape_interval": "5s",
            "prometheus_evaluation_interval": "5s",
            # Issue 19: an hour kept locally; older ranges come from VictoriaMetrics.
            **({"prometheus_retention_time": "1h"} if HA else {}),
            # (ha) A restarted peer notifies nothing for its start delay,
            # which must outlast the replicas' re-sends (the alertmanager
            # role checks it): alerts re-sent after 20 s instead of a
            # minute, and a 40 s delay (a 40-100 s window, at whole
            # minutes) instead of 90 s (90-150 s).
            **({"prometheus_alert_resend_delay": "20s", "alertmanager_start_delay_seconds": 40} if HA else {}),
            # The rules with their `for:` and `keep_firing_for:` scaled (FOR_DIVISOR).
            "prometheus_rules_src_glob": rules_for_test(rule_files, work),
            # Test values for what a real inventory keeps in ansible-vault.
            "vault_alertmanager_slack_api_url": f"http://{gw}:{WEBHOOK_PORT}/services/slack-webhook-test",
            "prometheus_runbook_base_url": "https://git.example.com/ops/monitoring/-/blob/main/",
            "vault_grafana_admin_password": "test-only-password",
            "vault_grafana_viewer_password": "test-viewer-password",
            "grafana_viewer_user": "guest",
            # Who hears about what (seed 003), with the operator's test
            # receivers: the database servers' critical alerts page the DBAs
            # (their channel and their mail), the web team gets the probes
            # and the containers; the rest goes to #alerts, and critical
            # also to oncall@ by mail. Short grouping waits keep the test fast.
            "alertmanager_heartbeat_url": f"http://{gw}:{WEBHOOK_PORT}/heartbeat",
            "alertmanager_email_to": "oncall@example.test",
            "alertmanager_email_from": "alertmanager@example.test",
            "alertmanager_smtp_smarthost": f"{gw}:{SMTP_PORT}",
            "alertmanager_smtp_require_tls": False,
            "alertmanager_receivers": [
                {"name": "dba", "slack_channel": "#dba", "email_to": "dba@example.test"},
                {"name": "web-team", "slack_channel": "#web"},
            ],
            "alertmanager_routes": [
                {"receiver": "dba", "groups": ["db"], "severities": ["critical"]},
                {"receiver": "web-team", "alertnames": ["ProbeFailing", "ContainerDown"]},
            ],
            "alertmanager_group_wait": "5s",
            # With peers, the group interval must outlast the last peer's
            # wait (2 x peer timeout, the role checks it) and the replicas'
            # evaluation lag, or a resolved group is sent again as firing.
            "alertmanager_group_interval": f"{GROUP_INTERVAL}s",
            # A restarted peer's groups flush a multiple of the evaluation
            # interval (5 s: alerts come right after an evaluation) away
            # from the others'; with waits of 0, 1.7 and 3.4 s any two peers
            # read the notification log at least 1.6 s apart, time for one's
            # notification to reach the other (2 s would leave 1 s).
            **({"alertmanager_cluster_peer_timeout": "1700ms"} if HA else {}),
        }
        # The database servers' disks run fuller: they page at 95 %, not 90 %
        # (inventories/example/group_vars/db.yml). The app host is in
        # app_servers too; fleet_group says which group its alerts carry.
        db_vars = {
            "alert_threshold_filesystem_usage_warning": 0.85,
            "alert_threshold_filesystem_usage_critical": 0.95,
            "fleet_group": "db",
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
            "firewall_extra_input_rules": [
                f"ip saddr {{ {', '.join(addrs[h] for h in ('monitoring', 'monitoring2') if h in addrs)}, {gw} }} "
                "tcp dport { 80, 8081 } accept"],
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
        write_inventory(inventory, addrs, [], group_vars, app_vars, db_vars)

        # 1. First deployment, timed.
        rc, took, text, recap = playbook(inventory, os.path.join(work, "run1.log"), *skip)
        if rc != 0:
            print(text[-6000:])
        check(rc == 0 and all(v["failed"] == 0 and v["unreachable"] == 0 for v in recap.values())
              and set(recap) == set(FLEET),
              f"first run of site.yml succeeds on {FLEET} (recap {recap})")
        log(f"first run of site.yml: {took:.1f}s wall time (seed 002's target: the whole environment in under 600s)")
        if rc != 0:
            raise SystemExit(1)

        prom = f"http://{mon}:9090"
        # Reads for the dashboards' disk panels (7c), from now on.
        disk_reader = DiskReader(work) if receiver else None

        # 2. and 8. (checked before 7e): the second run (idempotence) and the
        # --check run with the loki and grafana groups filled in, each in a
        # thread while the checks from outside (3-7d) go on: nothing those do
        # is a setting of the playbook's, and the test takes minutes less.
        inventory_full = os.path.join(work, "hosts-full.yml")
        write_inventory(inventory_full, addrs, ["loki", "grafana"], group_vars, app_vars, db_vars)
        runs = {}

        # In `ha` only tsdb runs it again, and only the roles the single
        # topology has not there (VictoriaMetrics, an Alertmanager peer
        # alone, a firewall opening their ports): the others are those whose
        # second run the single topology checks, and five hosts' second run
        # took minutes of the test's 10. It runs later, while the test waits
        # for notifications (9.): once VictoriaMetrics is back from its
        # outage and monitoring2 back in the cluster (7f), as the role checks
        # the peers and would start a stopped store.
        again = ["--limit", "tsdb", "--tags", "victoriametrics,alertmanager,firewall"] if HA else []
        monitoring2_back = threading.Event()

        def second_run():
            if HA:
                store_back.wait()
                monitoring2_back.wait()
                eventually("tsdb's Alertmanager sees monitoring2 again",
                           lambda: addrs["monitoring2"] in cluster_peers(addrs["tsdb"])[1] or None, timeout=120)
                log("second run (tsdb) starts")
            runs["second"] = playbook(inventory, os.path.join(work, "run2.log"), *again, *skip)

        def check_run():
            # Only the monitoring host, and only these roles, change with these
            # groups; the other roles are shown to be converged by the second run.
            # In `ha` only grafana's: its datasources are what differs (a
            # replica each, VictoriaMetrics); the others render as in `single`.
            runs["check"] = playbook(inventory_full, os.path.join(work, "check.log"),
                                     "--check", "--diff", "--limit", "monitoring",
                                     "--tags", ",".join(CHECK_ROLES), *skip)
        store_back = threading.Event()
        second = threading.Thread(target=second_run, daemon=True)
        check_thread = threading.Thread(target=check_run, daemon=True)
        for t in (second, check_thread):
            t.start()

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

        # 5b. High availability: one Alertmanager cluster of three peers, every
        # replica sending to every peer and writing to VictoriaMetrics (which
        # keeps one copy of the replicas' identical series: checked in 7c).
        if HA:
            check_ha_deployment(addrs)

        # 6. Reachability: the firewall policy, seen from each side.
        reach = Reachability()
        exporter_ports = [9100] + ([9080] if have_shipper else [])
        for port in exporter_ports:
            for host in ("app", "monitoring"):
                reach.expect("monitoring", addrs[host], port, "open", f"monitoring reaches {host}:{port}")
                reach.expect(None, addrs[host], port, "open", f"the operator reaches {host}:{port}")
                reach.expect("outsider", addrs[host], port, "filtered", f"the outsider cannot reach {host}:{port}")
            reach.expect("app", mon, port, "filtered",
                         f"the app host (not a Prometheus host) cannot reach monitoring:{port}")
        # Alertmanager's gossip port: between the peers only (TCP probed
        # here; UDP is in the same rule, checked in the ruleset). A single
        # Alertmanager has no peer: closed to everyone.
        for src in ("app", "outsider"):
            reach.expect(src, mon, 9094, "filtered", f"{src} (no peer) cannot reach monitoring:9094")
        reach.expect(None, mon, 9094, "filtered", "the operator (no peer) cannot reach monitoring:9094")
        for port in (9090, 9093):
            reach.expect(None, mon, port, "open", f"the operator reaches monitoring:{port}")
            reach.expect("outsider", mon, port, "filtered", f"the outsider cannot reach monitoring:{port}")
            reach.expect("app", mon, port, "filtered", f"the app host cannot reach monitoring:{port}")
        if HA:
            check_ha_firewall(addrs, reach)
        reach.check_all()

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
        # The exporter runs as an unprivileged user: the layer under the
        # Engine's root directory is readable through CAP_DAC_READ_SEARCH only,
        # which the unit grants on the Docker host and nowhere else.
        for h, want in (("app", "cap_dac_read_search"), ("monitoring", "")):
            got = [sh("docker", "exec", container(h), "systemctl", "show", "--value",
                      "-p", p, "node-exporter.service", check_rc=False).stdout.strip()
                   for p in ("User", "AmbientCapabilities")]
            check(got == ["node-exporter", want],
                  f"{h}: the exporter runs as node-exporter with ambient capabilities "
                  f"{want or 'none'} (User, AmbientCapabilities: {got})")
        fs_usage = f'container_fs_usage_bytes{{job="node",instance="app",name="{APP_CONTAINER}"}}'
        got = eventually("container disk use", lambda: value(
            f"{fs_usage} >= {APP_CONTAINER_FILL_MIB * 1024 * 1024}"), timeout=150)
        check(got is not None,
              f"the app host's exporter measures the container's writable layer "
              f"({APP_CONTAINER_FILL_MIB} MiB written): container_fs_usage_bytes "
              f"{value(fs_usage)[0]['value'][1] if value(fs_usage) else 'absent'}")
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

        # 7b'. The systemd collector (on by default in the role) reads the
        # hosts' systemd over D-Bus: a running unit, and one made to fail.
        check(eventually("ssh.service active", lambda: value(
                  'node_systemd_unit_state{instance="app",name="ssh.service",state="active"} == 1')) is not None,
              'the app host\'s exporter reports node_systemd_unit_state{name="ssh.service",state="active"} 1')
        failing = "fleet-test-failing.service"
        sh("docker", "exec", container("app"), "systemd-run", f"--unit={failing}", "/bin/false")
        check(eventually(f"{failing} failed", lambda: value(
                  f'node_systemd_unit_state{{instance="app",name="{failing}",state="failed"}} == 1')) is not None,
              f'a unit made to fail shows node_systemd_unit_state{{name="{failing}",state="failed"}} 1')
        sh("docker", "exec", container("app"), "systemctl", "reset-failed", failing)

        # 7c. Every dashboard query, against what was deployed.
        if receiver:
            # rate() over $__rate_interval (5 scrapes) needs a few scrapes of each job.
            eventually("six scrapes of every target", lambda: value(
                'min(count_over_time(up[2m])) >= 6'), timeout=120)
            check_dashboards(prom, receiver, work, disk_reader)
        if HA:
            check_ha_deduplicated(addrs)
        # 7d. A healthy deployment raises no alert (pending or firing).
        check_alerts(prom, allowed_alerts(probe_down))

        # 8. Loki and Grafana: --check --diff with their groups filled in (run
        # while 3-7d were checked).
        check_thread.join()
        rc, took3, text, recap = runs["check"]
        if rc != 0:
            print(text[-6000:])
        check(rc == 0 and all(v["failed"] == 0 for v in recap.values()),
              f"site.yml --check with loki and grafana on monitoring passes "
              f"(roles {', '.join(CHECK_ROLES)}; {took3:.1f}s)")
        for role, what, needle in [
            ("loki", "Loki config renders with retention", "retention_period: 744h"),
            ("loki", "Loki config renders with filesystem storage", f"chunks_directory: /var/lib/loki/chunks"),
            ("grafana", "Grafana's datasources get Prometheus' URL", f"Environment=PROMETHEUS_URL=http://{mon}:9090"),
            ("grafana", "Grafana's datasources get Loki's URL", f"Environment=LOKI_URL=http://{mon}:3100"),
            ("grafana", "Grafana's datasources get Alertmanager's URL", f"Environment=ALERTMANAGER_URL=http://{mon}:9093"),
            ("grafana", "Grafana provisions the dashboards directory", "GRAFANA_DASHBOARDS_DIR=/var/lib/grafana/dashboards/fleet"),
            ("grafana", "Grafana gets the repository's dashboards", "grafana-dashboards/fleet-overview.json"),
            ("firewall", "firewall opens Loki to the fleet", f"tcp dport {{ 3100 }} accept"),
            ("grafana", "the shipper gets a target file for Grafana's log", "__path__: /var/log/grafana/grafana.log"),
            ("prometheus", "Prometheus scrapes Grafana (job grafana)", f'- targets: ["{mon}:3000"]'),
            # Seed 001's read-only login (grafana_viewer_user): its API calls
            # do not run under --check, their tasks are there for the login.
            ("grafana", "Grafana gets the read-only viewer login", "TASK [grafana : Create the read-only viewer login guest]"),
            ("grafana", "the viewer is kept a Viewer", "TASK [grafana : Give the viewer the Viewer role in the organisation]"),
        ]:
            if role in CHECK_ROLES:
                check(needle in text, f"--check --diff: {what} ({needle!r})")
        check("test-only-password" not in text and "test-viewer-password" not in text,
              "--check --diff does not print the Grafana admin or viewer password")
        check("slack-webhook-test" not in open(os.path.join(work, "run1.log")).read(),
              "the playbook output does not print the Slack webhook URL")
        check_text = text

        # 2. Idempotence: a second run changes nothing (run while 3-7d were
        # checked: nothing they do is a setting of the playbook's; in `ha`
        # checked at the end).
        def check_second_run():
            second.join(timeout=600)
            if "second" not in runs:
                check(False, "the second run of site.yml ran (it did not: an earlier step failed)")
                return
            rc, took2, text, recap = runs["second"]
            changed = {h: v["changed"] for h, v in recap.items()}
            if rc != 0 or any(changed.values()):
                print("\n".join(line for line in text.splitlines()
                                if line.startswith(("changed:", "TASK", "fatal"))))
            check(rc == 0 and set(changed) == ({"tsdb"} if HA else set(FLEET)) and not any(changed.values()),
                  f"second run reports changed=0 on every host ({changed}, {took2:.1f}s)")
        if not HA:
            check_second_run()

        # 7e. Things go wrong (checked in 9, after the rules' `for`): disks
        # fill past their thresholds, the app's container is killed (exit
        # 137), and the down probe target stays down.
        t_fault, t_fault_wall = time.monotonic(), time.time()
        for h, mounts in FILLS.items():
            for mp, share in mounts.items():
                fill(h, mp, share)
        sh("docker", "kill", APP_CONTAINER)
        for h, mounts in FILLS.items():
            for mp, share in mounts.items():
                q = f'instance_device:node_filesystem_usage:ratio{{instance="{h}",mountpoint="{mp}"}} > {share - 0.01}'
                check(eventually(f"{mp} on {h} filled", lambda: prom_query(prom, q), timeout=60) is not None,
                      f"Prometheus sees {mp} on {h} filled to {share:.1%} (the exporter reports the tmpfs)")

        # 7f. VictoriaMetrics goes down while the rules' `for` runs (and the
        # loss of monitoring2 in 9.); the replicas keep its samples in their WAL.
        # (ha only: the single topology has no store.)
        store_up = []
        restart = None
        if HA:
            t_store_down = stop_store()
            log("VictoriaMetrics stopped on tsdb")

            # Started again after STORE_OUTAGE seconds, while 9. goes on.
            def start_store():
                sh("docker", "exec", container("tsdb"), "systemctl", "start", "victoria-metrics")
                store_up.append(time.time())
                store_back.set()
                log(f"VictoriaMetrics started again after {store_up[0] - t_store_down:.0f}s")
            restart = threading.Timer(STORE_OUTAGE, start_store)
            restart.start()

        # 9. The alerts of 7e reach the receivers the inventory names, once
        # each, and resolve once undone.
        expected = [
            {"what": "app's /srv/db-data at 97 % (group db, critical at 95 %)", "channel": "#dba",
             "mail": "dba@example.test",
             "labels": {"alertname": "NodeFilesystemAlmostFull", "severity": "critical", "instance": "app",
                        "mountpoint": "/srv/db-data", "group": "db"},
             "text": ["/srv/db-data on app is", "more than 95% full"]},
            {"what": "monitoring's /srv/data at 92.5 % (critical at the default 90 %)", "channel": "#alerts",
             "mail": "oncall@example.test",
             "labels": {"alertname": "NodeFilesystemAlmostFull", "severity": "critical",
                        "instance": "monitoring", "mountpoint": "/srv/data", "group": "monitoring"},
             "text": ["/srv/data on monitoring is", "more than 90% full"]},
            {"what": "the app's killed container", "channel": "#web",
             "labels": {"alertname": "ContainerDown", "severity": "warning", "instance": "app",
                        "name": APP_CONTAINER},
             "text": [f"Container {APP_CONTAINER} on app is down"]},
            {"what": "the down probe target", "channel": "#web",
             "labels": {"alertname": "ProbeFailing", "severity": "critical", "instance": probe_down},
             "text": [f"Probe of {probe_down} is failing"]},
        ]

        filled = dict(FILLS)

        def free_disks(*hosts):
            for h in hosts:
                for mp in filled.pop(h, {}):
                    sh("docker", "exec", container(h), "rm", "-f", f"{mp}/fill")

        # (ha) The restarted peer flushes its groups at other moments than
        # the other two (it made them when it heard the alerts again). A
        # group whose alerts resolve at different evaluations (two hosts'
        # disks, scraped at other moments) is then seen by the peers in
        # different states, and one resolution goes out twice: with the
        # other alert still firing from one peer, with both resolved from
        # the other (Alertmanager issue #3551; ansible/README.md). So the app's disks are
        # freed while that peer's start delay mutes it; the monitoring
        # host's disk, the container and the probe, each alone in its
        # group by then, after the delay. Not before the app's disks'
        # alerts are notified: freed while pending they would never fire.
        def free_app_disks():
            app_disks = [e for e in expected if e["labels"]["instance"] == "app" and "mountpoint" in e["labels"]]
            wait_notified(webhooks, mail, app_disks, "firing", faults_notified_by(t_fault))
            free_disks("app")
            log(f"the app's disks freed {time.monotonic() - t_fault:.0f}s after the faults "
                "(monitoring2 muted by its start delay)")

        def undo():
            free_disks(*FILLS)
            sh("docker", "start", APP_CONTAINER)
            sh("docker", "exec", "-d", container("app"), "python3", "-m", "http.server", "8081",
               "--directory", "/var/www/html")
        check_notifications(prom, webhooks, mail, expected, t_fault, undo,
                            (lambda: lose_replica_and_peer(addrs, webhooks, monitoring2_back, free_app_disks)) if HA
                            else (lambda: lambda: lambda: None))
        if failures or HA:
            log_timeline(addrs, webhooks, t_fault_wall)

        # 7f'. VictoriaMetrics was back after STORE_OUTAGE seconds (24 scrape
        # intervals buffered in the replicas' WAL, monitoring2's part of them
        # until it was stopped): no hole, its TargetDown notified once.
        if HA:
            restart.join()
            check_store_gap(addrs, t_store_down, store_up[0])
            check_store_paged_once(webhooks)
            check_long_term_query(addrs, check_text)
            check_second_run()
    finally:
        if disk_reader:
            disk_reader.stop()
        if receiver:
            receiver.stop()
        for r in (webhooks, mail):
            if r:
                r.stop()
        cleanup()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs and inventory kept in {work}")

    log(f"total {time.monotonic() - t0:.1f}s (issue 15: under 15 minutes on this machine class)")
    if failures:
        log(f"{len(failures)} check(s) failed:")
        for f in failures:
            log(f"  - {f}")
        sys.exit(1)
    log("all checks passed")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Deploys site.yml to real Debian 12 hosts (Docker containers running systemd
as PID 1) and checks from outside what the deployment promises.

Hosts, on a private Docker network made for the run:
  app         an application server (node exporter, log shipper)
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
        sh(
            "docker", "run", "-d", "--name", container(h), "--hostname", h,
            "--network", RUN, "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN",
            "--stop-signal", "SIGRTMIN+3",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs", "/run", "--tmpfs", "/run/lock",
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


def write_inventory(path, addrs, extra_groups, group_vars):
    """A YAML inventory (JSON is YAML) with the example's groups."""
    def hostvars(h):
        return {"ansible_host": container(h), "fleet_address": addrs[h]}

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


def cleanup():
    if os.environ.get("KEEP") == "1":
        log(f"KEEP=1: containers {RUN}-* and network {RUN} left up")
        return
    for h in HOSTS:
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
            "alertmanager_runbook_base_url": "https://git.example.com/ops/monitoring/-/blob/main/",
            "vault_grafana_admin_password": "test-only-password",
        }
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
            group_vars["log_shipper_extra_targets"] = [
                {"job": "nginx_access", "path": "/var/log/nginx/access.log"}]
            sh("docker", "exec", container("app"), "sh", "-c",
               "mkdir -p /var/log/nginx && echo 'before-deploy GET / 200' >> /var/log/nginx/access.log")
        else:
            skip = ["--skip-tags", "log_shipper"]
            log(f"NOTE: no log-shipper binary at {log_shipper}: the log_shipper role is skipped")

        inventory = os.path.join(work, "hosts.yml")
        write_inventory(inventory, addrs, [], group_vars)

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

        mon, app, gwip = addrs["monitoring"], addrs["app"], gw
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

        # 7. Logs written on the hosts arrive, labelled, at "Loki".
        if receiver:
            sh("docker", "exec", container("app"), "sh", "-c",
               "echo 'after-deploy GET /health 200' >> /var/log/nginx/access.log; "
               "logger -p auth.notice 'deploy-test auth line'")
            for what, labels, needle in [
                ("a web server line written before the deployment",
                 {"job": "nginx_access", "host": "app"}, "before-deploy GET / 200"),
                ("a web server line written after it",
                 {"job": "nginx_access", "host": "app"}, "after-deploy GET /health 200"),
                ("an auth log line", {"job": "auth", "host": "app"}, "deploy-test auth line"),
                ("Prometheus' own log", {"job": "prometheus", "host": "monitoring"}, "msg="),
                ("Alertmanager's own log", {"job": "alertmanager", "host": "monitoring"}, "msg="),
            ]:
                check(eventually(what, lambda: receiver.find(labels, needle), timeout=60) is not None,
                      f"Loki receives {what} with labels {labels}")
        else:
            log("NOTE: log delivery is not checked: it needs the log-shipper binary and the "
                f"Loki test receiver program ({receiver_bin})")

        # 8. Loki and Grafana: --check --diff with their groups filled in.
        inventory_full = os.path.join(work, "hosts-full.yml")
        write_inventory(inventory_full, addrs, ["loki", "grafana"], group_vars)
        # Only the monitoring host, and only these roles, change with these
        # groups; the other roles were just shown to be converged.
        rc, took3, text, recap = playbook(inventory_full, os.path.join(work, "check.log"),
                                          "--check", "--diff", "--limit", "monitoring",
                                          "--tags", "loki,grafana,firewall", *skip)
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

#!/usr/bin/env python3
"""The start delay against Debian's Alertmanager (0.25), side by side with
the same config without it:

    start_delay.py WORKDIR

Two Alertmanagers start from alertmanager.yml.j2 rendered with the example
variables, one through the alertmanager role's alertmanager-start-delay
(the window from now to the next minute boundary at least 10 s away), one
from the rendered file as it is. Both are then told what a restarted peer
hears from Prometheus' re-sends: a disk's warning that fired an hour ago,
and 3 s later its critical, which mutes the warning. Without the delay
Alertmanager notifies the warning at once (issue #4064; if it does not, the
scenario proves nothing and the test fails); with it, nothing comes before
the window ends, then the critical alone.
"""
import datetime
import http.server
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ALERTMANAGER_DIR = HERE.parent
ROLE_SCRIPT = ALERTMANAGER_DIR.parent.parent / "ansible/roles/alertmanager/files/alertmanager-start-delay"
GROUP_INTERVAL = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slack:
    """Records every message posted to /<name>, with the time it came."""

    def __init__(self):
        self.messages = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.messages.append((time.time(), self.path.strip("/"), json.loads(body)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def firing_severities(self, name):
        """(time, severities of the firing alerts) of each message to `name`,
        read the way slack.tmpl writes them."""
        out = []
        for at, path, body in list(self.messages):
            if path != name:
                continue
            text = "\n".join(a.get("text", "") for a in body.get("attachments", []))
            sev = [m.group(1) for block in text.split("\n\n") if "*RESOLVED*" not in block
                   for m in re.finditer(r"\*Severity:\* (\w+)", block)]
            out.append((at, sev))
        return out


def render(work, name, slack):
    out = work / name
    subprocess.run([sys.executable, str(ALERTMANAGER_DIR / "render.py"), str(ALERTMANAGER_DIR / "example-vars.yml"),
                    str(out), "-e", f"alertmanager_slack_api_url=http://127.0.0.1:{slack.port}/{name}",
                    "-e", f"alertmanager_templates_dir={out / 'templates'}", "-e", "alertmanager_email_to=",
                    "-e", "alertmanager_group_wait=1s",
                    "-e", f"alertmanager_group_interval={GROUP_INTERVAL}s"], check=True)
    return out / "alertmanager.yml"


def start(work, name, config):
    port = free_port()
    data = work / f"{name}-data"
    data.mkdir()
    log = open(work / f"{name}.log", "w")
    proc = subprocess.Popen(["prometheus-alertmanager", f"--config.file={config}", f"--storage.path={data}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=1):
                return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"start_delay.py: Alertmanager {name} did not get ready; see {work / name}.log")


def post(base, severity):
    started = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).isoformat()
    alert = [{"labels": {"alertname": "NodeFilesystemAlmostFull", "severity": severity, "job": "node",
                         "instance": "web1", "device": "/dev/sda1", "mountpoint": "/"},
              "annotations": {"summary": f"/ on web1 is almost full ({severity})"}, "startsAt": started}]
    req = urllib.request.Request(f"{base}/api/v2/alerts", data=json.dumps(alert).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5):
        pass


def main():
    work = pathlib.Path(sys.argv[1])
    slack = Slack()
    delayed_src, control = render(work, "delayed", slack), render(work, "control", slack)
    delayed = delayed_src.with_name("running.yml")
    subprocess.run([str(ROLE_SCRIPT), "10", str(delayed_src), str(delayed)], check=True)
    window = (delayed.parent / "start-delay-window").read_text()
    m = re.search(r"end_time: '(\d\d):(\d\d)'", window.splitlines()[-1])
    now = datetime.datetime.now(datetime.timezone.utc)
    end = now.replace(hour=0, minute=0, second=0, microsecond=0) + datetime.timedelta(
        hours=int(m.group(1)), minutes=int(m.group(2)))
    if end < now:  # the window crosses midnight
        end += datetime.timedelta(days=1)
    window_end = end.timestamp()

    procs = []
    try:
        for name, config in (("delayed", delayed), ("control", control)):
            procs.append(start(work, name, config))
        for severity in ("warning", "critical"):
            for _, base in procs:
                post(base, severity)
            time.sleep(3)
        time.sleep(max(0.0, window_end - time.time()) + 2 * GROUP_INTERVAL + 3)
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait()

    failed = []
    control_msgs = slack.firing_severities("control")
    if not control_msgs or "warning" not in control_msgs[0][1]:
        failed.append(f"without the start delay Alertmanager did not notify the muted warning first "
                      f"({control_msgs}): the scenario shows nothing")
    delayed_msgs = slack.firing_severities("delayed")
    early = [(round(at - window_end, 1), sev) for at, sev in delayed_msgs if at < window_end]
    if early:
        failed.append(f"with the start delay, notified before its window ended ({early}, seconds from its end)")
    if not delayed_msgs or any(sev != ["critical"] for _, sev in delayed_msgs):
        failed.append(f"with the start delay, not the critical alone after the window "
                      f"({[(round(at - window_end, 1), sev) for at, sev in delayed_msgs]})")
    for f in failed:
        print(f"FAIL {f}", file=sys.stderr)
    if failed:
        print(f"the window: {window.strip()}; logs in {work}", file=sys.stderr)
        return 1
    print(f"ok: without the delay the warning at once ({len(control_msgs)} messages); with it the critical "
          f"alone, {delayed_msgs[0][0] - window_end:.1f}s after the window ended")
    return 0


if __name__ == "__main__":
    sys.exit(main())

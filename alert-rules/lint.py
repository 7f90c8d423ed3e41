#!/usr/bin/env python3
"""Checks what promtool does not: every alert has the labels and annotations
operators rely on, a runbook entry, and promtool tests that show it firing
(for each severity it has) and staying quiet; recording rules follow the
level:metric:operations convention; runbook_url is an absolute link under
the base the rule files are written with (the Ansible prometheus role's
`prometheus_rules_runbook_base_url`, which it replaces by the inventory's).
Prints every problem, exits 1 if any.

    lint.py RULES_DIR TESTS_DIR RUNBOOK.md PROMETHEUS_ROLE_VARS.yml
"""
import pathlib
import re
import sys

import yaml

SEVERITIES = {"info", "warning", "critical"}
# The dead man's switch (Watchdog): always firing, no `for:`, no instance,
# routed to the heartbeat receiver only.
HEARTBEAT = "none"
RECORD_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-zA-Z_][a-zA-Z0-9_]*:[a-z0-9_]+$")


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^a-z0-9_ -]", "", heading.strip().lower()).replace(" ", "-")


def main(rules_dir: str, tests_dir: str, runbook: str, role_vars: str) -> int:
    problems = []
    base = yaml.safe_load(pathlib.Path(role_vars).read_text())["prometheus_rules_runbook_base_url"]
    anchors = {anchor(m.group(1)) for m in
               re.finditer(r"^#+ (.+)$", pathlib.Path(runbook).read_text(), re.M)}

    alerts = {}  # alertname -> set of severities
    heartbeats = set()  # alertnames that never stay quiet
    for path in sorted(pathlib.Path(rules_dir).glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    if not RECORD_NAME.match(rule["record"]):
                        problems.append(f"{path}: recording rule {rule['record']}: "
                                        "name is not level:metric:operations")
                    continue
                name = rule["alert"]
                where = f"{path}: alert {name}"
                sev = rule.get("labels", {}).get("severity")
                heartbeat = sev == HEARTBEAT and rule["expr"].strip() == "vector(1)"
                if sev not in SEVERITIES and not heartbeat:
                    problems.append(f"{where}: severity {sev!r} is not one of {sorted(SEVERITIES)}"
                                    f" ({HEARTBEAT!r} is for an always-firing vector(1) heartbeat)")
                alerts.setdefault(name, set()).add(sev)
                if heartbeat:
                    heartbeats.add(name)
                if not rule.get("for") and not heartbeat:
                    problems.append(f"{where}: no `for:`; a single bad sample would page")
                # A failed scrape leaves its series stale for an evaluation: without
                # keep_firing_for the alert resolves and fires again, and with several
                # Prometheus replicas Alertmanager notifies each such flap. `up` is
                # never stale.
                if not heartbeat and not re.match(r"up\b", rule["expr"].strip()) \
                        and not rule.get("keep_firing_for"):
                    problems.append(f"{where}: no `keep_firing_for:`; a missed scrape would resolve it")
                ann = rule.get("annotations", {})
                for key in ("summary", "description", "runbook_url"):
                    if not ann.get(key):
                        problems.append(f"{where}: no {key} annotation")
                # Alerts about a whole job (`by (job)`) name the job instead.
                names = ("$labels.job" if re.search(r"\bby \(job\)", rule["expr"])
                         else "$labels.instance")
                if not heartbeat and names not in ann.get("description", ""):
                    problems.append(f"{where}: the description does not name the "
                                    f"{names.split('.')[1]}")
                url = ann.get("runbook_url", "")
                want = f"{base}alert-rules/RUNBOOK.md#{name.lower()}"
                if url != want:
                    problems.append(f"{where}: runbook_url is {url!r}, expected {want!r}")
                if name.lower() not in anchors:
                    problems.append(f"{where}: no '## {name}' section in {runbook}")

    fired = {}  # alertname -> severities some test expects to fire
    quiet = set()  # alertnames some test expects to stay quiet at some time
    for path in sorted(pathlib.Path(tests_dir).glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                name = case["alertname"]
                exp = case.get("exp_alerts") or []
                if not exp:
                    quiet.add(name)
                for a in exp:
                    fired.setdefault(name, set()).add(a.get("exp_labels", {}).get("severity"))
                    missing = {"summary", "description", "runbook_url"} - set(a.get("exp_annotations", {}))
                    if missing:
                        problems.append(f"{path}: {name}: expected alert does not check {sorted(missing)}")
    for name, sevs in sorted(alerts.items()):
        untested = sevs - fired.get(name, set())
        if untested:
            problems.append(f"{name}: no promtool test shows it firing with severity {sorted(untested)}")
        if name not in quiet and name not in heartbeats:
            problems.append(f"{name}: no promtool test shows it staying quiet (exp_alerts: [])")
    for name in sorted(set(fired) - set(alerts)):
        problems.append(f"tests expect alert {name}, which no rule defines")

    for p in problems:
        print(f"lint: {p}", file=sys.stderr)
    if not problems:
        print(f"lint: {len(alerts)} alerts: labels, annotations, runbook entries and tests complete")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))

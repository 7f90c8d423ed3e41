#!/usr/bin/env bash
# `make rules-test`: everything about alert-rules/ that does not need a
# running Prometheus (the end-to-end test in tests/ does that).
set -euo pipefail
cd "$(dirname "$0")"
# The Debian python3 that `make deps` gives python3-jinja2 and python3-yaml.
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

echo "== promtool check rules"
promtool check rules rules/*.yml
echo "== promtool test rules"
promtool test rules tests/*.yml
echo "== labels, annotations, runbook entries, test coverage"
"$PYTHON" lint.py rules tests RUNBOOK.md ../ansible/roles/prometheus/vars/main.yml

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== the example config is what the template renders"
"$PYTHON" alertmanager/render.py alertmanager/example-vars.yml "$work/example"
diff -u alertmanager/alertmanager.example.yml "$work/example/alertmanager.yml" || {
  echo "alertmanager/alertmanager.example.yml is stale: regenerate it with" >&2
  echo "  $PYTHON alertmanager/render.py alertmanager/example-vars.yml DIR && cp DIR/alertmanager.yml alertmanager/alertmanager.example.yml" >&2
  exit 1
}

# amtool loads the templates too, so render them where the config says.
check_config() { # name, extra render.py args...
  local dir="$work/$1"; shift
  "$PYTHON" alertmanager/render.py alertmanager/example-vars.yml "$dir" \
    -e alertmanager_templates_dir="$dir/templates" "$@"
  amtool check-config "$dir/alertmanager.yml"
}
echo "== amtool check-config (example, and without mail)"
check_config full
check_config nomail -e alertmanager_email_to=
check_config nodelay -e alertmanager_start_delay_seconds=0
if grep -q "start-delay" "$work/nodelay/alertmanager.yml"; then
  echo "alertmanager_start_delay_seconds=0 still mutes routes at start:" >&2
  grep -n "start-delay" "$work/nodelay/alertmanager.yml" >&2; exit 1
fi

echo "== the start delay's window (ansible/roles/alertmanager/files/alertmanager-start-delay)"
start_delay=../ansible/roles/alertmanager/files/alertmanager-start-delay
# At 23:59:30 on New Year's Eve, 90 s: the last minute of the year and the
# first of the next, both checked by amtool; a reload later keeps them.
faketime '2026-12-31 23:59:30' "$start_delay" 90 "$work/full/alertmanager.yml" "$work/full/running.yml"
want="      - {years: ['2026'], months: ['12'], days_of_month: ['31'], times: [{start_time: '23:59', end_time: '24:00'}], location: UTC}
      - {years: ['2027'], months: ['1'], days_of_month: ['1'], times: [{start_time: '00:00', end_time: '00:01'}], location: UTC}"
got=$(grep -A2 -- "- name: start-delay" "$work/full/running.yml" | tail -n +3; grep -F "days_of_month: ['1']" "$work/full/running.yml")
[[ "$got" == "$want" ]] || { echo "the window at 2026-12-31 23:59:30 + 90 s is" >&2; echo "$got" >&2; echo "expected:" >&2; echo "$want" >&2; exit 1; }
amtool check-config "$work/full/running.yml" >/dev/null
faketime '2027-01-01 00:30:00' "$start_delay" 90 "$work/full/alertmanager.yml" "$work/full/running.yml" --reload
grep -qF "$want" "$work/full/running.yml" || { echo "a reload moved the window" >&2; exit 1; }
# Refused, each saying what is wrong: a delay that is not whole seconds, and
# a config without the placeholder line (a template of the user's own).
if "$start_delay" 1m "$work/full/alertmanager.yml" "$work/x.yml" 2>"$work/sd.err" || ! grep -q "start delay '1m' is not a whole number of seconds" "$work/sd.err"; then
  echo "a start delay of 1m was not refused by name:" >&2; cat "$work/sd.err" >&2; exit 1; fi
if "$start_delay" 90 "$work/nodelay/alertmanager.yml" "$work/x.yml" 2>"$work/sd.err" || ! grep -q "no line with '# start-delay window'" "$work/sd.err"; then
  echo "a config without the window's placeholder was not refused:" >&2; cat "$work/sd.err" >&2; exit 1; fi
# --check, the role's validate: the config with a window passes amtool; one
# without the placeholder is refused before the role puts it in place.
"$start_delay" --check "$work/full/alertmanager.yml" >"$work/sd.out" || { cat "$work/sd.out" >&2; exit 1; }
if "$start_delay" --check "$work/nodelay/alertmanager.yml" >/dev/null 2>"$work/sd.err" || ! grep -q "no line with '# start-delay window'" "$work/sd.err"; then
  echo "--check passed a config without the window's placeholder:" >&2; cat "$work/sd.err" >&2; exit 1; fi
echo "ok"
echo "== the start delay against Alertmanager: a muted warning before its critical (side by side, up to 80 s)"
"$PYTHON" alertmanager/tests/start_delay.py "$(mkdir "$work/start-delay" && echo "$work/start-delay")"

echo "== thresholds per inventory group and host, as the Ansible prometheus role writes them"
# The role's own rule tasks, run locally for tests/inventory/ (db: disks
# critical at 95 %; app2: memory warning at 80 %; one probe URL at 3 s) with
# another runbook base; then promtool tests on what they wrote.
export ANSIBLE_ROLES_PATH=../ansible/roles ANSIBLE_NOCOLOR=1
inv="$work/inventory"
ansible-playbook -i tests/inventory/hosts.yml tests/inventory/render.yml -e out="$inv" >"$work/ansible.log" 2>&1 || {
  cat "$work/ansible.log" >&2; exit 1; }
cp tests/inventory/thresholds-test.yml "$inv/"
promtool test rules "$inv/thresholds-test.yml"
grep -q 'group: "db"' "$inv/file_sd/node.yml" || {
  echo "the role's file_sd targets do not carry the inventory group:" >&2; cat "$inv/file_sd/node.yml" >&2; exit 1; }
# A threshold variable the rules do not know is an error that names it.
if ansible-playbook -i tests/inventory/hosts.yml tests/inventory/render.yml -e out="$work/bad" \
    -e alert_threshold_disk_usage=0.5 >"$work/bad.log" 2>&1 \
  || ! grep -q "unknown variable alert_threshold_disk_usage" "$work/bad.log"; then
  echo "an unknown alert_threshold_* variable was not refused by name:" >&2; cat "$work/bad.log" >&2; exit 1
fi
echo "ok"

echo "== the alertmanager role's checks: the example routing passes, a wrong route is refused by name"
am_checks() { ansible-playbook -i tests/inventory/hosts.yml tests/inventory/alertmanager-checks.yml \
  -e @alertmanager/example-vars.yml "$@"; }
am_checks >"$work/am.log" 2>&1 || { cat "$work/am.log" >&2; exit 1; }
if am_checks -e '{"alertmanager_routes": [{"receiver": "dba", "group": ["db"]}]}' >"$work/am-bad.log" 2>&1 \
  || ! grep -q "alertmanager_routes\[0\]: unknown key group" "$work/am-bad.log"; then
  echo "a route with an unknown key was not refused by name:" >&2; cat "$work/am-bad.log" >&2; exit 1
fi
# Three peers waiting 2 x 15 s could notify a resolved group again as firing
# within a 10 s group interval: refused, naming both settings; 2 x 2 s passes.
if am_checks -e '{"alertmanager_cluster_peers": ["a", "b", "c"], "alertmanager_group_interval": "10s"}' \
    >"$work/am-cluster.log" 2>&1 \
  || ! grep -q "alertmanager_cluster_peer_timeout (15s) = 30s, not less than alertmanager_group_interval (10s)" "$work/am-cluster.log"; then
  echo "a cluster whose peers would notify twice was not refused by name:" >&2; cat "$work/am-cluster.log" >&2; exit 1
fi
am_checks -e '{"alertmanager_cluster_peers": ["a", "b", "c"], "alertmanager_group_interval": "10s", "alertmanager_cluster_peer_timeout": "2s"}' \
  >"$work/am-cluster-ok.log" 2>&1 || { cat "$work/am-cluster-ok.log" >&2; exit 1; }
if am_checks -e alertmanager_start_delay_seconds=1m >"$work/am-delay.log" 2>&1 \
  || ! grep -q "alertmanager_start_delay_seconds (1m) is not a whole number of seconds" "$work/am-delay.log"; then
  echo "a start delay of 1m was not refused by name:" >&2; cat "$work/am-delay.log" >&2; exit 1
fi
# The start delay must outlast each Prometheus' re-send delay plus its
# evaluation interval (and 10 s): 90 s against 90 s + 15 s is refused by
# name; 40 s against 20 s + 5 s (the HA deployment test's) passes.
if am_checks -e prometheus_alert_resend_delay=90s >"$work/am-resend.log" 2>&1 \
  || ! grep -q "mon1.example.internal: alertmanager_start_delay_seconds (90) is shorter than prometheus_alert_resend_delay (90s) + prometheus_evaluation_interval (15s) + 10 s = 115 s" "$work/am-resend.log"; then
  echo "a start delay shorter than Prometheus' re-sends was not refused by name:" >&2; cat "$work/am-resend.log" >&2; exit 1
fi
if am_checks -e prometheus_alert_resend_delay=90 >"$work/am-resend-unit.log" 2>&1 \
  || ! grep -q "mon1.example.internal: prometheus_alert_resend_delay (90) is not a duration" "$work/am-resend-unit.log"; then
  echo "a re-send delay without a unit was not refused by name:" >&2; cat "$work/am-resend-unit.log" >&2; exit 1
fi
am_checks -e '{"prometheus_alert_resend_delay": "20s", "prometheus_evaluation_interval": "5s", "alertmanager_start_delay_seconds": 40}' \
  >"$work/am-resend-ok.log" 2>&1 || { cat "$work/am-resend-ok.log" >&2; exit 1; }
echo "ok"

echo "== Slack text: previous and new level"
level_lines=$(amtool template render --template.glob=alertmanager/templates/slack.tmpl \
  --template.text='{{ template "fleet.slack.text" . }}' \
  --template.data=alertmanager/tests/level-change.json | grep '^\*Level:\*')
want='*Level:* critical -> warning
*Level:* critical -> warning
*Level:* critical -> fine'
[[ "$level_lines" == "$want" ]] || {
  echo "level lines for tests/level-change.json are:" >&2; echo "$level_lines" >&2
  echo "expected:" >&2; echo "$want" >&2; exit 1; }
echo "ok"

echo "== amtool config routes test"
failed=0
routes_test() { # config, expected receivers, labels...
  local config=$1 want=$2; shift 2
  if amtool config routes test --config.file="$config" --verify.receivers="$want" "$@" >/dev/null 2>&1; then
    echo "ok   $want <- $*"
  else
    echo "FAIL $* goes to $(amtool config routes test --config.file="$config" "$@" 2>/dev/null), not $want" >&2
    failed=1
  fi
}
while read -r want labels; do
  [[ -z "$want" || "$want" == \#* ]] && continue
  # shellcheck disable=SC2086 # labels are words
  routes_test "$work/full/alertmanager.yml" "$want" $labels
  # Without a mail address, critical alerts still reach Slack.
  # shellcheck disable=SC2086
  routes_test "$work/nomail/alertmanager.yml" "${want#email-oncall,}" $labels
done < alertmanager/routes-tests.txt
exit $failed

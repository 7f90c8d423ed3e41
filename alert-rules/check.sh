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

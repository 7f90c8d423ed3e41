#!/usr/bin/env bash
# Bad input is refused with a message that says what is wrong: for each case,
# `terraform console` on the example (it checks every variable, the modules'
# too, and never calls AWS) must print "Invalid value for variable" and the
# expected message. The terraform test files prove *which* variable fails;
# this proves what the user reads. Needs `terraform init` done in the example.
set -euo pipefail
cd "$(dirname "$0")/../environments/example"
export TF_CLI_CONFIG_FILE="$PWD/../../terraformrc" AWS_EC2_METADATA_DISABLED=true

good=(-var 'operator_cidrs=["203.0.113.7/32"]'
      -var 'ssh_public_key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXJAdGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdA test@example')
results=$(mktemp -d)
n=0

# check EXPECTED -var ... : run the console with the good variables overridden
# by the given ones, in the background (each run is mostly start-up time).
check() {
  n=$((n + 1))
  run_case "$@" >"$results/$n" &
}

# run_case EXPECTED -var ... : prints "ok: ..." or "FAIL: ...".
run_case() {
  local expected="$1"; shift
  local out
  # Messages are wrapped at 80 columns: compare with all whitespace runs squeezed to one space.
  out=$(echo 'var.name' | terraform console -no-color -state="$results/$n.tfstate" "${good[@]}" "$@" 2>&1 | tr -s ' \n' '  ') || true
  if [[ -z "$expected" ]]; then
    if [[ "$out" == *"Error"* ]]; then
      echo "FAIL: valid variables $* were refused: $out"; return
    fi
  elif [[ "$out" != *"Invalid value for variable"* || "$out" != *"$expected"* ]]; then
    echo "FAIL: $* should be refused with \"$expected\", got: $out"; return
  fi
  echo "ok: ${*:-valid variables} -> ${expected:-accepted}"
}

check ""
check "" -var-file=terraform.tfvars.example
check "operator_cidrs must not contain 0.0.0.0/0 (or any /0): the exporters and Prometheus would be open to the whole internet." \
  -var 'operator_cidrs=["203.0.113.7/32","0.0.0.0/0"]'
check 'operator_cidrs must be IPv4 networks in CIDR notation with no host bits set, such as 203.0.113.7/32 or 198.51.100.0/24 (got ["203.0.113.7/24"]).' \
  -var 'operator_cidrs=["203.0.113.7/24"]'
check "operator_cidrs must hold at least one address, or nobody can reach the servers over SSH." \
  -var 'operator_cidrs=[]'
check 'grafana_allowed_cidrs must be IPv4 networks in CIDR notation with no host bits set, such as 0.0.0.0/0 or 198.51.100.0/24 (got ["everyone"]).' \
  -var 'grafana_allowed_cidrs=["everyone"]'
check 'vpc_cidr must be an IPv4 network in CIDR notation with no host bits set, such as 10.42.0.0/16 (got "10.42.1.0/16").' \
  -var 'vpc_cidr=10.42.1.0/16'
check "every subnets[*].cidr must lie inside vpc_cidr (10.42.0.0/16)." \
  -var 'subnets={a={cidr="10.43.1.0/24"}}'
check "prometheus and alertmanager must each run on at least one of monitoring_servers (several: replicas and cluster peers)." \
  -var 'monitoring_servers={monitoring-1={components=["prometheus","grafana","loki"]}}'
check "each of grafana and loki must run on exactly one of monitoring_servers." \
  -var 'monitoring_servers={monitoring-1={components=["prometheus","alertmanager","grafana"]}}'
check "a name is used in both monitoring_servers and app_servers: monitoring-1." \
  -var 'app_servers={monitoring-1={}}'
check "app_servers[*].public_tcp_ports must not include SSH or a monitoring port (9093, 9094, 3000, 9080, 3100, 9100, 9090, 22, 8428)" \
  -var 'app_servers={web-1={public_tcp_ports=[443,9100]}}'
check "ssh_public_key must be one OpenSSH public key line" \
  -var 'ssh_public_key=-----BEGIN OPENSSH PRIVATE KEY-----'
check "every service needs its own port: two services in ports share one." \
  -var 'ports={prometheus=3000}'

wait
cat "$results"/*
passed=$(cat "$results"/* | grep -c '^ok: ' || true)
failed=$((n - passed))
rm -rf "$results"
echo "validation_messages: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

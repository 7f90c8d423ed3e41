#!/usr/bin/env bash
# `make run`: the suite on this machine, on loopback. Our node-exporter
# (:9100) and log-shipper (:9080, tailing /var/log/*.log and its own
# siblings' logs), plus, where the Debian packages are installed,
# Prometheus (:9090) with our alert rules scraping both agents and
# Alertmanager (:9093) with our config rendered for a local Slack stand-in.
# Loki cannot be installed here: the shipper pushes to $LOKI_URL and, while
# nothing answers, holds its place in the files (nothing is lost).
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=${RUN_DIR:-$ROOT/.tmp/run}
LISTEN=${LISTEN:-127.0.0.1:9100}
SHIPPER_PORT=${SHIPPER_PORT:-9080}
LOKI_URL=${LOKI_URL:-http://127.0.0.1:3100/loki/api/v1/push}
BIN=$ROOT/target/release
PY=/usr/bin/python3
mkdir -p "$RUN"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

start() { # name, command...
  local name=$1; shift
  "$@" >"$RUN/$name.log" 2>&1 &
  pids+=($!)
  echo "started $name (pid $!, log $RUN/$name.log)"
}

start node-exporter "${NODE_EXPORTER:-$BIN/node-exporter}" --web.listen-address="$LISTEN"

cat >"$RUN/log-shipper.yaml" <<YAML
server:
  http_listen_address: 127.0.0.1
  http_listen_port: $SHIPPER_PORT
positions:
  filename: $RUN/positions.yaml
clients:
  - url: $LOKI_URL
scrape_configs:
  - job_name: syslog
    static_configs:
      - targets: [localhost]
        labels:
          job: syslog
          host: $(hostname)
          log_type: service
          __path__: /var/log/*.log
  - job_name: monitoring
    static_configs:
      - targets: [localhost]
        labels:
          job: monitoring
          host: $(hostname)
          log_type: service
          __path__: $RUN/{prometheus,alertmanager,node-exporter}.log
YAML
start log-shipper "$BIN/log-shipper" -config.file="$RUN/log-shipper.yaml"

# Debian names the Alertmanager server prometheus-alertmanager; upstream alertmanager.
ALERTMANAGER=$(command -v prometheus-alertmanager || command -v alertmanager || true)
if command -v prometheus >/dev/null && [ -n "$ALERTMANAGER" ]; then
  "$PY" alert-rules/alertmanager/render.py alert-rules/alertmanager/example-vars.yml "$RUN/alertmanager" \
    -e alertmanager_slack_api_url=http://127.0.0.1:9999/slack-stand-in -e alertmanager_heartbeat_url= >/dev/null
  start alertmanager "$ALERTMANAGER" --config.file="$RUN/alertmanager/alertmanager.yml" \
    --storage.path="$RUN/alertmanager-data" --web.listen-address=127.0.0.1:9093 \
    --cluster.listen-address=
  cat >"$RUN/prometheus.yml" <<YAML
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files:
  - $ROOT/alert-rules/rules/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: [127.0.0.1:9093]
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [$LISTEN]
  - job_name: log-shipper
    static_configs:
      - targets: [127.0.0.1:$SHIPPER_PORT]
  - job_name: prometheus
    static_configs:
      - targets: [127.0.0.1:9090]
  - job_name: alertmanager
    static_configs:
      - targets: [127.0.0.1:9093]
YAML
  start prometheus prometheus --config.file="$RUN/prometheus.yml" \
    --storage.tsdb.path="$RUN/prometheus-data" --web.listen-address=127.0.0.1:9090
else
  echo "prometheus/alertmanager not installed (make deps installs them): agents only"
fi

echo "node-exporter  http://$LISTEN/metrics"
echo "log-shipper    http://127.0.0.1:$SHIPPER_PORT/targets  (pushing to $LOKI_URL)"
echo "prometheus     http://127.0.0.1:9090   alertmanager http://127.0.0.1:9093"
echo "Ctrl-C stops everything."
wait -n "${pids[@]}" || true
echo "a process exited; stopping the rest (see $RUN/*.log)"

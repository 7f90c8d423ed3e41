# The two commands: `make run` and `make test`. Everything a fresh machine
# needs is installed by `make deps`, which `make test` calls.

SHELL := /bin/bash
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

# Debian packages the tests run for real (Prometheus, promtool, Debian's
# node_exporter to compare against, Alertmanager and amtool; busybox-static
# for the docker collector's test image).
APT_PACKAGES := prometheus prometheus-node-exporter prometheus-alertmanager ca-certificates busybox-static
# alert-rules/alertmanager/render.py renders the Alertmanager template as Ansible does.
APT_PACKAGES += python3-jinja2 python3-yaml
# systemd-journal-remote writes the journal files the log-shipper's journal tests read.
APT_PACKAGES += systemd-journal-remote
# debootstrap builds the Debian 12 test hosts of the Ansible deployment test.
APT_PACKAGES += debootstrap
# logrotate: the log-shipper's rotation tests run Debian's real logrotate
# (copytruncate, create, compress, dateext, olddir, rotate 1) against the shipper.
APT_PACKAGES += logrotate
# curl: the shipper's TLS server test (server.http_tls_config with client
# certificates) is checked with a TLS client nobody here wrote.
APT_PACKAGES += curl
# prometheus-blackbox-exporter: the prober test runs the real one side by side with ours.
APT_PACKAGES += prometheus-blackbox-exporter
# iproute2: the icmp socket test brings up loopback in a network namespace of its own.
APT_PACKAGES += iproute2
# rsyslog (+ rsyslog-gnutls for TLS): the log-shipper's syslog test forwards through the real rsyslogd.
APT_PACKAGES += rsyslog rsyslog-gnutls
# valgrind: `make bench` counts the log-shipper's instructions per line with callgrind
# (a count does not move with the load of a shared machine, a CPU time does).
APT_PACKAGES += valgrind
# tinyproxy-bin: the log-shipper's proxy test pushes through Debian's tinyproxy
# (absolute-form http, CONNECT for https, proxy credentials).
APT_PACKAGES += tinyproxy-bin
# faketime: the alertmanager role's start-delay window tested at a year's end.
APT_PACKAGES += faketime

# node-exporter ships as one static binary (musl): no libc to load, about a
# third of node_exporter's resident memory; this is what `make run`, the
# benchmark and the Ansible role use.
STATIC_TARGET := x86_64-unknown-linux-musl
STATIC_EXPORTER := target/$(STATIC_TARGET)/release/node-exporter

LISTEN ?= 127.0.0.1:9100
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: logrotate-test run test deps toolchain static-exporter build release static-test lint unit e2e bench fuzz clean rules-test terraform-test ansible-lint ansible-test ansible-ha-test

## run: build and run the suite on this machine: node-exporter on $(LISTEN),
## log-shipper on :9080, and (when installed) Prometheus with our rules and
## Alertmanager; Ctrl-C stops them all
run: release
	LISTEN=$(LISTEN) NODE_EXPORTER=$(STATIC_EXPORTER) scripts/run-local.sh

## test: install what the tests need, then lint and run every test of every part
test: deps lint unit static-test rules-test terraform-test ansible-test ansible-ha-test

## deps: idempotent; apt-get only runs when a package is missing
deps: toolchain
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	else echo "system packages present: $(APT_PACKAGES)"; fi
	@command -v rustfmt >/dev/null || rustup component add rustfmt
	@command -v cargo-clippy >/dev/null || rustup component add clippy
	@# Python tools (checkov, ...): pip runs only when one is missing or the file changed.
	@mkdir -p .tmp; \
	names=$$(sed -e 's/#.*//' -e 's/[=<>!~;[ ].*//' requirements-dev.txt | grep -v '^$$'); \
	if cmp -s requirements-dev.txt .tmp/requirements-dev.installed && \
	   python3 -c 'import importlib.metadata as m, sys; [m.version(n) for n in sys.argv[1:]]' $$names 2>/dev/null; then \
	  echo "python packages present:" $$names; \
	else \
	  python3 -m pip install --disable-pip-version-check --root-user-action=ignore -q -r requirements-dev.txt && cp requirements-dev.txt .tmp/requirements-dev.installed; \
	fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## unit: every Rust test; the end-to-end tests need the binaries built first
unit: build
	$(CARGO) test --workspace --no-fail-fast

build:
	$(CARGO) build --workspace

## toolchain: what the static build needs: the rustup target, musl's
## compiler wrapper (Debian's musl-tools, for ring's C code) and lld (the
## linker scripts/link-scrape-first.py runs)
toolchain:
	@rustup target list --installed | grep -qx $(STATIC_TARGET) || rustup target add $(STATIC_TARGET)
	@command -v musl-gcc >/dev/null && command -v ld.lld >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends musl-tools lld; }

static-exporter: toolchain
	$(CARGO) build --release --target $(STATIC_TARGET) -p node-exporter

## release: the binaries to deploy: node-exporter static ($(STATIC_EXPORTER)),
## log-shipper in target/release
release: static-exporter
	$(CARGO) build --release -p log-shipper

## static-test: the static node-exporter against Debian's node_exporter and a real Prometheus
static-test: deps static-exporter
	NODE_EXPORTER_BIN=$(CURDIR)/$(STATIC_EXPORTER) $(CARGO) test -p e2e-tests --test compat_node_exporter --test prometheus_scrape

## logrotate-test: only the shipper's stress tests against real logrotate (part
## of `unit`); a failure keeps every shipper run's log in target/logrotate-test/
logrotate-test: deps
	$(CARGO) build -p log-shipper
	$(CARGO) test -p e2e-tests --test shipper_logrotate

## rules-test: promtool check/test of alert-rules/, lint, amtool check-config and routes tests
rules-test: deps
	PATH="$(PY_SCRIPTS):$$PATH" alert-rules/check.sh

## terraform-test: fmt, init (providers from the local mirror only), validate and
## `terraform test` (mock AWS provider) for every root and module, validation
## messages, checkov. No AWS account or network needed.
TF_DIRS := $(wildcard terraform/environments/*) $(wildcard terraform/modules/*)
terraform-test:
	@command -v terraform >/dev/null || { echo "terraform not found: install Terraform >= 1.9 (/usr/local/bin/terraform)"; exit 1; }
	@test -d /opt/tf-plugins || { echo "/opt/tf-plugins (the local provider mirror) is missing"; exit 1; }
	set -eu; export TF_CLI_CONFIG_FILE=$(CURDIR)/terraform/terraformrc TF_IN_AUTOMATION=1; \
	terraform fmt -check -recursive terraform; \
	for d in $(TF_DIRS); do \
	  echo "== $$d"; \
	  out=$$(terraform -chdir=$$d init -backend=false -input=false -no-color 2>&1) || { echo "$$out"; exit 1; }; \
	  terraform -chdir=$$d validate -no-color; \
	  if [ -d $$d/tests ]; then terraform -chdir=$$d test -no-color; fi; \
	done; \
	terraform/tests/validation_messages.sh
	python3 -m checkov.main -d terraform --quiet --compact --skip-download

## bench: ours against Debian's node_exporter, same collectors, one run; docker collector cost by container count;
## CPU per probe against Debian's blackbox_exporter, same modules;
## log-shipper throughput, latency, memory and instructions per line (callgrind) into the Loki test receiver
## (bench/shipper.py, ~20 min); writes BENCHMARKS.md
bench: deps static-exporter
	python3 bench/compare.py --ours $(STATIC_EXPORTER) --collectors defaults --output BENCHMARKS.md
	python3 bench/containers.py --output BENCHMARKS.md
	python3 bench/probes.py --ours $(STATIC_EXPORTER) --output BENCHMARKS.md
	$(CARGO) build --release -p log-shipper
	$(CARGO) build --release -p e2e-tests --example loki_bench_receiver
	python3 bench/shipper.py --output BENCHMARKS.md

## fuzz: run every parser fuzz target for FUZZ_SECONDS each (cargo-fuzz): node-exporter's
## /proc and /sys parsers, log-shipper's push API bodies and GELF chunks
FUZZ_SECONDS ?= 60
fuzz:
	node-exporter/fuzz/run.sh $(FUZZ_SECONDS)
	log-shipper/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean

# Python tools from requirements-dev.txt live next to the python3 that pip used.
PY_SCRIPTS := $(shell python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)

## ansible-lint: the playbook parses and every role passes ansible-lint's production profile
ansible-lint:
	cd ansible && PATH="$(PY_SCRIPTS):$$PATH" ansible-playbook --syntax-check site.yml
	cd ansible && PATH="$(PY_SCRIPTS):$$PATH" ansible-lint --profile production

## ansible-test: Loki's simple-scalable mode and VictoriaMetrics' cluster form rendered under
## --check (neither can be installed here); site.yml deployed to Debian 12 containers running
## systemd (one monitoring host), checked from outside
ansible-test: ansible-lint static-exporter
	cd ansible && PATH="$(PY_SCRIPTS):$$PATH" ANSIBLE_CONFIG=ansible.cfg ansible-playbook -i tests/loki_scalable/hosts.yml tests/loki_scalable/check.yml --check --diff >/dev/null || \
	  { echo "Loki simple-scalable check failed; rerun: cd ansible && ansible-playbook -i tests/loki_scalable/hosts.yml tests/loki_scalable/check.yml --check"; exit 1; }
	cd ansible && PATH="$(PY_SCRIPTS):$$PATH" ANSIBLE_CONFIG=ansible.cfg ansible-playbook -i tests/victoriametrics_cluster/hosts.yml tests/victoriametrics_cluster/check.yml --check --diff >/dev/null || \
	  { echo "VictoriaMetrics cluster check failed; rerun: cd ansible && ansible-playbook -i tests/victoriametrics_cluster/hosts.yml tests/victoriametrics_cluster/check.yml --check"; exit 1; }
	$(CARGO) build -p log-shipper
	$(CARGO) build -p e2e-tests --example loki_receiver --example deployed_dashboards
	NODE_EXPORTER_BIN=$(CURDIR)/$(STATIC_EXPORTER) PATH="$(PY_SCRIPTS):$$PATH" python3 ansible/tests/deploy_test.py

## ansible-ha-test: issue 19's high-availability topology (two Prometheus replicas, three
## Alertmanager peers, VictoriaMetrics, two app hosts) deployed and checked, nodes killed
## (ansible/README.md, item 11). Run it alone, not beside ansible-test: its exporters
## report this Engine's containers.
ansible-ha-test: ansible-lint static-exporter
	$(CARGO) build -p log-shipper
	$(CARGO) build -p e2e-tests --example loki_receiver --example deployed_dashboards
	DEPLOY_TOPOLOGY=ha NODE_EXPORTER_BIN=$(CURDIR)/$(STATIC_EXPORTER) PATH="$(PY_SCRIPTS):$$PATH" python3 ansible/tests/deploy_test.py

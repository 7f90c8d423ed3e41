# The two commands: `make run` and `make test`. Everything a fresh machine
# needs is installed by `make deps`, which `make test` calls.

SHELL := /bin/bash
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

# Debian packages the tests run for real (Prometheus, promtool, Debian's
# node_exporter to compare against, Alertmanager and amtool).
APT_PACKAGES := prometheus prometheus-node-exporter prometheus-alertmanager ca-certificates
# debootstrap builds the Debian 12 test hosts of the Ansible deployment test.
APT_PACKAGES += debootstrap

LISTEN ?= 127.0.0.1:9100
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: run test deps build lint unit e2e bench fuzz clean ansible-lint ansible-test

## run: build and run the exporter on $(LISTEN) with the default collectors
run:
	$(CARGO) build --release -p node-exporter
	./target/release/node-exporter --web.listen-address=$(LISTEN)

## test: install what the tests need, then lint and run every test of every part
test: deps lint unit ansible-test

## deps: idempotent; apt-get only runs when a package is missing
deps:
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
	python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r requirements-dev.txt

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## unit: every Rust test; the end-to-end tests need the binaries built first
unit: build
	$(CARGO) test --workspace --no-fail-fast

build:
	$(CARGO) build --workspace

## bench: ours against Debian's node_exporter, same collectors, one run; writes BENCHMARKS.md
bench: deps
	$(CARGO) build --release -p node-exporter
	python3 bench/compare.py --output BENCHMARKS.md

## fuzz: run every parser fuzz target for FUZZ_SECONDS each (cargo-fuzz)
FUZZ_SECONDS ?= 60
fuzz:
	node-exporter/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean

# Python tools from requirements-dev.txt live next to the python3 that pip used.
PY_SCRIPTS := $(shell python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)

## ansible-lint: the playbook parses and every role passes ansible-lint's production profile
ansible-lint:
	cd ansible && PATH="$(PY_SCRIPTS):$$PATH" ansible-playbook --syntax-check site.yml
	cd ansible && PATH="$(PY_SCRIPTS):$$PATH" ansible-lint --profile production

## ansible-test: site.yml deployed to Debian 12 containers running systemd, checked from outside
ansible-test: ansible-lint
	$(CARGO) build -p node-exporter
	PATH="$(PY_SCRIPTS):$$PATH" python3 ansible/tests/deploy_test.py

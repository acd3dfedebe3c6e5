# Sparta: the verbs people type.
#   make run    start Sparta on the embedded default (local filesystem store, your GOPROXY as upstream)
#   make test   install what the tests need, then run every test
#   make bench  run the benchmarks and write bench/results/<date>.md
#   make lint   cargo fmt --check and clippy -D warnings
#   make fuzz   run each fuzz target for FUZZ_SECONDS (default 60)
#   make soak   SOAK_SECONDS (default 600) of mixed load on the release binary; writes bench/results/soak-<date>.md
#   make deny   cargo deny: licenses, bans, sources (also part of make test)
#   make test-e2e, make test-deploy: parts of make test

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/bin:$(TOOLS)/go/bin:$(HOME)/go/bin:/usr/local/go/bin:$(PATH)

# Upstream for `make run`: the machine's GOPROXY, less `direct` and `off`.
UPSTREAM ?= $(shell go env GOPROXY 2>/dev/null | tr ',|' '\n\n' | grep -E '^https?://' | paste -sd, -)
LISTEN ?= 0.0.0.0:3000
STORAGE ?= ./sparta-data

.PHONY: help run build release test test-e2e test-deploy test-image lint fmt bench tools go-toolchain fuzz soak deny

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

run: go-toolchain
	@test -n "$(UPSTREAM)" || { echo "no http(s) entry in 'go env GOPROXY'; run: make run UPSTREAM=https://your.proxy" >&2; exit 1; }
	$(CARGO) run --release -p sparta -- serve --listen $(LISTEN) --storage $(STORAGE) --upstream "$(UPSTREAM)"

build:
	$(CARGO) build -p sparta

release:
	$(CARGO) build --release -p sparta

# The go command is the client of every end-to-end test.
go-toolchain:
	@bash scripts/install-go.sh

tools: go-toolchain
	@bash scripts/s3-server.sh install
	@bash scripts/cloud-emulators.sh install
	@bash scripts/install-deploy-tools.sh
	@bash scripts/install-nginx.sh
	@bash scripts/install-sshd.sh
	@bash scripts/install-chromium.sh

# The tools install while the code compiles (scripts/test.sh), then every test runs.
test: go-toolchain
	@bash scripts/test.sh

# Pieces of `make test`, for working on one part.
test-e2e: go-toolchain build
	SPARTA_BIN=$(CURDIR)/target/debug/sparta $(CARGO) test -p sparta-e2e --test e2e

test-deploy: tools build
	@bash scripts/deploy-check.sh
	@bash scripts/deploy-prometheus-test.sh

# Builds deploy/Dockerfile with buildah and runs the image (slow; not in `make test`).
test-image: go-toolchain build
	@bash scripts/image-test.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: go-toolchain
	@bash bench/run.sh

fuzz:
	@bash scripts/fuzz.sh run

# Not in `make test` (a 20 s slice of the same test is: tests/e2e/soak.rs).
SOAK_SECONDS ?= 600
soak: go-toolchain release
	SPARTA_BIN=$(CURDIR)/target/release/sparta SOAK_SECONDS=$(SOAK_SECONDS) \
	SOAK_REPORT=$(CURDIR)/bench/results/soak-$$(date -u +%Y-%m-%d).md \
	$(CARGO) test -p sparta-e2e --test e2e soak:: -- --nocapture

deny:
	@bash scripts/deny.sh

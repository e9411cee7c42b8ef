# Sahara API under uWSGI: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The knobs are deploy/defaults.env's, read by sahara_api_knobs.py (the
# scripts ask it), an environment variable of the same name winning:
# `SAHARA_API_FRONT=direct make run`. The dev stack's own defaults: the repo's
# config and state dirs instead of /etc and /run (the environment wins here too).
export SAHARA_CONFIG_FILES ?= $(CURDIR)/etc/sahara/sahara.conf
export SAHARA_API_DRAIN_FILE ?= $(CURDIR)/.stack/healthcheck_disable
export SAHARA_RUN_DIR ?= $(CURDIR)/.stack/run
export VIRTUAL_ENV := $(CURDIR)/.venv

PYTEST := .venv/bin/pytest
HELM := .venv/bin/helm
CHART := deploy/helm/sahara-api
# pytest arguments, e.g. make test PYTEST_ARGS='-k slow'
PYTEST_ARGS ?=
# Test processes side by side (pytest-xdist): most of a test is waiting on the
# services it started, so 3 keep 2 cores busy. TEST_JOBS=0: one process, in order.
TEST_JOBS ?= 3
# Run the mode matrix in these modes only, e.g. make test MODE=debug
MODE ?=
export SAHARA_TEST_MODES := $(MODE)

.PHONY: help install run debug test fresh-check unit-test integration-test image image-test chart chart-knobs chart-test cluster-test bench hostile soak lint lock stack-down

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

run: ## Install and start the local stack, serve the API under supervisord (Ctrl-C stops)
	scripts/run.sh

debug: install ## Like run, but the API in one process with green threads: pdb and reload on code change
	scripts/debug.sh

install: ## Install what is missing: Debian packages, .venv (pinned), a uWSGI with every feature uwsgi.ini uses
	scripts/stack.sh install

test: install $(HELM) ## Unit, integration, chart and container tests against the real local stack
	@# Build first, outside pytest's per-test timeout (cold: ~4 min with the base);
	@# if podman cannot work here, tests/container says why and skips.
	scripts/image.sh || echo "[image] build failed: tests/container reports why"
	$(PYTEST) tests -n $(TEST_JOBS) $(PYTEST_ARGS)

fresh-check: ## A new user on a fresh Debian 12, in a clean container: README set-up, make run, TERM; step times (~6 min)
	scripts/fresh-check.sh

unit-test: install ## Unit tests only (no services)
	$(PYTEST) tests/unit $(PYTEST_ARGS)

integration-test: install ## Integration tests only (brings the stack up and down)
	$(PYTEST) tests/integration $(PYTEST_ARGS)

bench: install ## Benchmark against upstream sahara-api -> docs/benchmarks.md (~20 min after a quiet machine; BENCH_QUICK=1: ~3 min)
	.venv/bin/python -m bench

hostile: install ## Hostile clients (slowloris, big heads and bodies, HUP, kill) vs upstream -> docs/security.md (~8 min)
	.venv/bin/python -m bench.hostile_run

soak: install ## Chaos soak: CRUD load, a worker killed every 20 s, a reload a minute -> docs/soak.md (SOAK_SECONDS=600)
	.venv/bin/python -m soak

image: ## Build the sahara-api image (deploy/Dockerfile) with podman; makes the Debian base if missing
	scripts/image.sh

image-test: install image ## Run the image with podman against the local stack (tests/container)
	$(PYTEST) tests/container $(PYTEST_ARGS)

chart: install $(HELM) ## helm lint the chart and package it into build/ (deploy/ files resolved)
	$(HELM) lint --strict $(CHART)
	$(HELM) package $(CHART) -d build

chart-knobs: ## Regenerate the chart's knob defaults, schema bounds and env list from deploy/defaults.env
	.venv/bin/python sahara_api_knobs.py chart

chart-test: install $(HELM) ## Chart checks without a cluster: lint, render, schema, bad values (tests/chart)
	$(PYTEST) tests/chart $(PYTEST_ARGS)

cluster-test: install $(HELM) image ## The chart on a real single-node Kubernetes built from Go modules -> docs/cluster-test.md (root; cold build 8-20 min, then ~5 min)
	scripts/cluster-test.sh $(PYTEST_ARGS)

$(HELM): scripts/install-helm.sh | install
	scripts/install-helm.sh $@

lint: install $(HELM) ## ruff, shellcheck, hadolint and helm lint
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	shellcheck scripts/*.sh deploy/*.sh .ci/run
	.venv/bin/hadolint deploy/Dockerfile
	$(HELM) lint --strict $(CHART)

lock: ## Regenerate requirements/constraints.txt from the 2023.2 upper-constraints
	scripts/stack.sh lock

stack-down: ## Stop the services scripts/stack.sh started (after an interrupted run)
	scripts/stack.sh down

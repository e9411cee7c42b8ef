# Sahara API under uWSGI: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

include deploy/defaults.env
# The dev stack uses the repo's config and state dirs instead of /etc and /run.
SAHARA_CONFIG_FILES := $(CURDIR)/etc/sahara/sahara.conf
SAHARA_API_DRAIN_FILE := $(CURDIR)/.stack/healthcheck_disable
SAHARA_RUN_DIR := $(CURDIR)/.stack/run
VIRTUAL_ENV := $(CURDIR)/.venv
export

PYTEST := .venv/bin/pytest
# pytest arguments, e.g. make test PYTEST_ARGS='-k slow'
PYTEST_ARGS ?=

.PHONY: help run test unit-test integration-test bench lint lock stack-down

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

run: ## Install and start the local stack, serve the API under supervisord (Ctrl-C stops)
	scripts/run.sh

.venv/.installed: requirements/*.txt
	scripts/stack.sh install

test: .venv/.installed ## Unit and integration tests against the real local stack
	$(PYTEST) tests $(PYTEST_ARGS)

unit-test: .venv/.installed ## Unit tests only (no services)
	$(PYTEST) tests/unit $(PYTEST_ARGS)

integration-test: .venv/.installed ## Integration tests only (brings the stack up and down)
	$(PYTEST) tests/integration $(PYTEST_ARGS)

bench: .venv/.installed ## Benchmark against upstream sahara-api -> docs/benchmarks.md (~10 min; BENCH_QUICK=1: ~1.5 min)
	.venv/bin/python -m bench

lint: .venv/.installed ## ruff and shellcheck
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	shellcheck scripts/*.sh .ci/run

lock: ## Regenerate requirements/constraints.txt from the 2023.2 upper-constraints
	scripts/stack.sh lock

stack-down: ## Stop the services scripts/stack.sh started (after an interrupted run)
	scripts/stack.sh down

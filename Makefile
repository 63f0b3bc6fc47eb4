# pvc: `make` builds dist/pvc; `make test` installs what is missing, builds, lints and tests.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: all deps build lint format test test-unit test-integration test-chaos bench run stop rpm clean

all: build

deps:
	@./scripts/install-deps

build: deps
	@./scripts/build-zipapp

PY_SCRIPTS := scripts/chaos-primary scripts/chaos-ha $(wildcard scripts/bench/*)

lint: deps
	$(VENV)/bin/ruff check pvc tests $(PY_SCRIPTS)
	$(VENV)/bin/ruff format --check pvc tests $(PY_SCRIPTS)

format: deps
	$(VENV)/bin/ruff format pvc tests $(PY_SCRIPTS)

test: build lint
	$(VENV)/bin/pytest -q tests

test-unit: deps
	$(VENV)/bin/pytest -q tests/unit

test-integration: build
	$(VENV)/bin/pytest -q tests/integration

test-chaos: build
	$(VENV)/bin/pytest -q tests/chaos

run: build
	@./scripts/local-cluster start

stop:
	@./scripts/local-cluster stop

bench: build
	@for bench in scripts/bench/*; do [ -x "$$bench" ] && "$$bench"; done; true

rpm: build
	rpmbuild -bb pvc.spec --define "_sourcedir $(CURDIR)" --define "_topdir $(CURDIR)/build/rpm"

clean:
	rm -rf build dist .pytest_cache

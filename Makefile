# meshlab: `make demo` and `make test` install whatever is missing, then run. Idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the playground and the tests need (tool -> package).
APT_TOOLS := nginx:nginx-light haproxy:haproxy wrk:wrk hey:hey ab:apache2-utils chromium:chromium h2load:nghttp2-client
STORE ?= data/meshlab.duckdb
PYTEST_ARGS ?= --durations=30

.PHONY: demo test install lint system-deps python-deps kernel clean help

help:
	@echo "make demo   install what is missing, run data/profiles/quickstart.yaml, write an HTML report"
	@echo "make test   install what is missing, run lint and the whole test suite"

install: system-deps python-deps kernel

system-deps: .stamp-apt
.stamp-apt: Makefile
	@missing=""; for pair in $(APT_TOOLS); do tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$tool >/dev/null 2>&1 || [ -x /usr/sbin/$$tool ] || missing="$$missing $$pkg"; done; \
	[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing="$$missing libnginx-mod-stream"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

python-deps: $(VENV)/.stamp-deps
$(VENV)/.stamp-deps: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "meshlab needs Python >= 3.11; set PYTHON=python3.11")'
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[playground,workbench,k8s,dev]'
	@touch $@

kernel: $(VENV)/.stamp-kernel
$(VENV)/.stamp-kernel: $(VENV)/.stamp-deps
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (meshlab)" >/dev/null
	@touch $@

lint: python-deps
	$(BIN)/ruff check meshlab
	$(BIN)/mypy meshlab

demo: install
	@mkdir -p data/reports
	$(BIN)/meshlab run data/profiles/quickstart.yaml --store $(STORE)
	@echo
	$(BIN)/meshlab compare --store $(STORE) --by mesh --baseline 'mesh=none,experiment=latest'
	$(BIN)/meshlab report --store $(STORE) --baseline 'mesh=none,experiment=latest' \
	  --candidate 'mesh!=none,experiment=latest' --out data/reports/quickstart.html --no-fail
	@echo; echo "results: $(STORE)"; echo "report:  data/reports/quickstart.html"

test: install lint
	@dupes=$$(find tests -name 'test_*.py' -printf '%f\n' | sort | uniq -d); \
	  if [ -n "$$dupes" ]; then echo "test files share a basename (pytest cannot collect both): $$dupes"; exit 1; fi
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .stamp-apt build *.egg-info

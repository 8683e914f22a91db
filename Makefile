PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROMETHEUS := /usr/bin/promtool  # with the server: Debian's prometheus package
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install run test test-slow test-ui screenshots ui-install lint dev bench docs clean deploy-home workers workers-stop package

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,deploy]'
	touch $@

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster-local.yaml
	mkdir -p $(DAGSTER_HOME) && cp deploy/dagster-local.yaml $@

run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/vector-sync sync --config vector_sync.yaml
	$(BIN)/vector-sync search notes "how do I keep a sourdough starter alive" --limit 3 --config vector_sync.yaml

# dg (Dagster's project CLI, [tool.dg] in pyproject.toml) runs in the project's venv
DG := VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg

lint: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check vector_sync vector_sync_tests benchmarks
	$(BIN)/mypy vector_sync
	VECTOR_SYNC_CONFIG=$(CURDIR)/vector_sync.yaml $(DG) check defs

test: install lint $(PROMETHEUS)
	$(BIN)/pytest -q

# the kill-anywhere harness and other long suites (CI runs them after `make test`)
test-slow: install
	$(BIN)/pytest -q -m slow

# browser tests of the Dagster UI (vector_sync_tests/ui): `dagster dev` over a temporary
# project, driven by playwright in Debian's Chromium (not playwright's own download)
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get install -y chromium || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

# the Prometheus server and promtool (Debian's package, PROMETHEUS above): the metrics tests
# scrape `vector-sync metrics serve` with a real server and unit-test deploy/prometheus/'s rules
$(PROMETHEUS):
	$(SUDO) apt-get install -y --no-install-recommends prometheus || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends prometheus; }

ui-install: install $(CHROMIUM)
	$(BIN)/python -m pip install --quiet -e '.[dev,deploy,ui]'

test-ui: ui-install
	$(BIN)/pytest -q -m ui

# the same tests, keeping their screenshots (1280x800 PNG) in docs/images/
screenshots: ui-install
	mkdir -p docs/images
	VECTOR_SYNC_SCREENSHOTS=$(CURDIR)/docs/images $(BIN)/pytest -q -m ui

dev: install $(DAGSTER_HOME)/dagster.yaml
	VECTOR_SYNC_CONFIG=$(CURDIR)/vector_sync.yaml $(DG) dev

docs: install
	$(BIN)/python -m vector_sync.config_reference

# benchmarks/run.py: one table of figures with their baselines (docs/benchmarks.md);
# e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--only noop,edit --json bench.json"
BENCH_ARGS ?=
# the distributed profile (docs/scaling-out.md): a PostgreSQL Dagster instance, Celery workers
deploy-home: install
	mkdir -p $(DAGSTER_HOME) && cp deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

WORKERS ?= 2
workers: install
	PATH=$(CURDIR)/$(BIN):$$PATH deploy/workers.sh $(WORKERS)

workers-stop:
	deploy/workers.sh stop

bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,deploy,bench]'
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# the wheel and sdist a team installs (docs/dagster-integration.md), into dist/
package: install
	$(BIN)/python -m build --outdir dist

clean:
	rm -rf .vector_sync $(DAGSTER_HOME)

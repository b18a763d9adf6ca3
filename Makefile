# BevForge OS — make run · make test · make test-postgres · make bench · make soak · make lint
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5007
SOAK_MINUTES ?= 120
# The suite without browsers runs on two pytest-xdist workers, a test module per worker at a time (its
# module-scoped fixtures stay shared), the long modules first (tests/conftest.py). `make test XDIST=`
# runs it in one process.
XDIST ?= -n 2 --dist loadfile --no-loadscope-reorder
# The browser tests are a second pytest run (sync pytest-playwright and pytest-asyncio cannot share one), on
# two workers as well, a test file per worker at a time, the longest files first (tests/e2e/conftest.py).
# `make test-e2e E2E_XDIST=` runs them in one process.
E2E_XDIST ?= -n 2 --dist loadfile --no-loadscope-reorder

.PHONY: run run-sites test test-fast test-postgres test-e2e doc-images bench soak lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) main.py --port $(PORT)

# A broker, two simulated sites (ports PORT+1, PORT+2) and a central panel on PORT (scripts/run_sites.py).
run-sites: $(VENV)/.installed
	bash scripts/ensure-packages.sh mosquitto=/usr/sbin/mosquitto mosquitto=mosquitto_passwd
	$(PY) scripts/run_sites.py --centre-port $(PORT)

test: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports
	bash scripts/ensure-packages.sh chromium=/usr/bin/chromium nginx=/usr/sbin/nginx openssl=openssl \
	    mosquitto=/usr/sbin/mosquitto mosquitto=mosquitto_passwd "postgresql=/usr/lib/postgresql/*/bin/pg_ctl" \
	    systemd=systemd-analyze
	$(PY) -m pytest -p no:playwright --ignore=tests/e2e -q $(XDIST)
	$(PY) -m pytest tests/e2e -q -p no:asyncio -W ignore::pytest.PytestConfigWarning $(E2E_XDIST)

# Everything but the browser tests and the tests marked slow (pyproject.toml: markers).
test-fast: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports
	bash scripts/ensure-mosquitto.sh
	bash scripts/ensure-postgres.sh
	$(PY) -m pytest -p no:playwright --ignore=tests/e2e -q -m "not slow" $(XDIST)

# The integration suite again, on a throwaway PostgreSQL server the tests start (tests/support/postgres.py):
# every test gets a fresh database; SQLite-only tests (WAL, its file) are skipped with their reason.
test-postgres: $(VENV)/.installed-test
	bash scripts/ensure-postgres.sh
	BEVFORGE_TEST_DB=postgresql $(PY) -m pytest -p no:playwright -q tests/integration

test-e2e: $(VENV)/.installed-test
	bash scripts/ensure-chromium.sh
	$(PY) -m pytest tests/e2e -q -p no:asyncio -W ignore::pytest.PytestConfigWarning $(E2E_XDIST)

# Retake the screenshots docs/operator.md shows (the e2e tests write them only when asked).
doc-images: $(VENV)/.installed-test
	bash scripts/ensure-chromium.sh
	BEVFORGE_DOC_IMAGES=1 $(PY) -m pytest tests/e2e -q -p no:asyncio -W ignore::pytest.PytestConfigWarning $(E2E_XDIST)

bench: $(VENV)/.installed-test
	$(PY) bench/run_all.py

# The long soak: the server under 50 /ws + 10 screen clients and an operator for SOAK_MINUTES
# (default 2 hours; `make soak SOAK_MINUTES=20` for a shorter one). Prints a table per sample and
# judges "RSS flat after warm-up within 10 %" (exit status 1 when not met).
soak: $(VENV)/.installed-test
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) data .pytest_cache

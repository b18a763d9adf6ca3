# BevForge OS — make run · make test · make bench · make lint
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5007

.PHONY: run test test-fast test-e2e doc-images bench lint clean

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

test: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports
	bash scripts/ensure-chromium.sh
	$(PY) -m pytest -p no:playwright --ignore=tests/e2e -q
	$(PY) -m pytest tests/e2e -q -p no:asyncio -W ignore::pytest.PytestConfigWarning

# Everything but the browser tests and the tests marked slow (pyproject.toml: markers).
test-fast: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -p no:playwright --ignore=tests/e2e -q -m "not slow"

test-e2e: $(VENV)/.installed-test
	bash scripts/ensure-chromium.sh
	$(PY) -m pytest tests/e2e -q -p no:asyncio -W ignore::pytest.PytestConfigWarning

# Retake the screenshots docs/operator.md shows (the e2e tests write them only when asked).
doc-images: $(VENV)/.installed-test
	bash scripts/ensure-chromium.sh
	BEVFORGE_DOC_IMAGES=1 $(PY) -m pytest tests/e2e -q -p no:asyncio -W ignore::pytest.PytestConfigWarning

bench: $(VENV)/.installed-test
	$(PY) bench/run_all.py

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) data .pytest_cache

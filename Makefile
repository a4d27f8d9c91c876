# `make demo`: set up and run the main job on the bundled real recordings.
# `make test`: set up and run the test suite (what CI runs), then `make test-lowest`.
# Installs use the exact pins of constraints.txt; setup.py holds the supported ranges.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
DEMO_OUT ?= demo_out

.PHONY: setup setup-test test test-fast test-lowest lint demo bench clean

# `wheel` first: the editable install builds with --no-build-isolation (no separate build venv).
$(VENV)/.runtime: constraints.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) wheel
	$(PIP) -c constraints.txt --no-build-isolation -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime constraints.txt
	$(PIP) -c constraints.txt --no-build-isolation -e '.[test]'
	touch $@

setup: $(VENV)/.runtime
setup-test: $(VENV)/.test

lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup-test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider
	$(MAKE) test-lowest

# The lower end of setup.py's ranges: a venv that already holds the lowest supported
# TensorFlow / Keras / NumPy gets the package installed on top (ranges, no constraints);
# pip must keep those versions, and a smoke subset (build every model, golden Cnn6, tag)
# must pass. The venv and pip's wheel cache are kept, so a rerun takes seconds.
LOWEST_VENV ?= .venv-lowest
LOWEST ?= tensorflow==2.16.2 keras==3.3.3 numpy==1.26.4
SMOKE := tests/models/test_registry.py "tests/models/test_golden.py::test_golden_outputs[Cnn6]" \
	tests/test_cli_infer.py::test_tag_formats_and_errors
test-lowest:
	test -x $(LOWEST_VENV)/bin/python || $(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(LOWEST) \
		pytest wheel
	$(LOWEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-build-isolation -e .
	$(LOWEST_VENV)/bin/python tests/check_versions.py $(LOWEST)
	$(LOWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider $(SMOKE)

test-fast: setup-test
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

demo: setup
	$(PY) examples/demo.py --out=$(DEMO_OUT)

bench: setup
	$(PY) benchmarks/model_speed.py

clean:
	rm -rf $(VENV) $(LOWEST_VENV) $(DEMO_OUT) build *.egg-info

# `make transfer-demo`: every transfer mode on the bundled digits (stand-in init, CPU).
TRANSFER_DEMO_OUT ?= transfer_demo_out
.PHONY: transfer-demo
transfer-demo: setup
	$(PY) examples/transfer_demo.py --out=$(TRANSFER_DEMO_OUT)

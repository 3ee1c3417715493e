# Everything starts from a fresh machine with Python >= 3.11 and make: the first target that needs the
# virtual environment creates it and installs the project (editable) with its dev extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help test lint typecheck cfn-lint unit demo bench soak clean sam-validate sam-build

help:
	@echo "make demo   - realistic collections run on embedded AWS (moto), report at the end"
	@echo "make test   - ruff, mypy, cfn-lint and the whole pytest suite"
	@echo "make bench  - benchmarks (requests, capacity units, throughput, cold start) -> docs/benchmarks.md"
	@echo "make soak   - the state-machine test over SOAK_EXAMPLES random schedules (default 2000), SOAK_DEMO_SEEDS seeded demos at 30 % faults (default 20), and SOAK_LIVES random 200-loan lives of a contact item (default 20)"
	@echo "make sam-validate / sam-build - validate (with lint) / build the template for arm64 with the SAM CLI"

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

test: lint typecheck cfn-lint
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/property

demo: $(STAMP)
	$(BIN)/dunning demo $(DEMO_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The state-machine test (tests/property/test_state_machine.py) over many random schedules; it prints how
# many schedules it explored and how many invariant checks it made.
SOAK_EXAMPLES ?= 2000
SOAK_DEMO_SEEDS ?= 20
# Random lives of 200 loans for the contact item's size (tests/property/test_contact_item_size.py): ~5 s each.
SOAK_LIVES ?= 20
soak: $(STAMP)
	SOAK_EXAMPLES=$(SOAK_EXAMPLES) SOAK_DEMO_SEEDS=$(SOAK_DEMO_SEEDS) $(BIN)/pytest tests/property/test_state_machine.py tests/integration/test_soak.py -k soak_ -s -p no:logging
	SOAK_EXAMPLES=$(SOAK_LIVES) $(BIN)/pytest tests/property/test_contact_item_size.py -k soak_ -s -p no:logging

# aws-sam-cli pins an older boto3, so it lives in its own virtual environment.
SAM := .venv-sam/bin/sam

$(SAM):
	test -x $(SAM) || ($(PYTHON) -m venv .venv-sam && .venv-sam/bin/pip install --quiet aws-sam-cli)

sam-validate: $(SAM)
	$(SAM) validate --region us-east-1 --lint

# Builds the functions and the layer for the template's architecture (arm64) into .aws-sam/build. The
# layer's wheels must match Lambda's Python (3.13): with python3.13 on PATH, SAM fetches arm64 wheels
# itself; otherwise it builds in the Lambda build image (needs a running Docker).
sam-build: $(SAM)
	@if python3.13 -c "" >/dev/null 2>&1; then \
		$(SAM) build --region us-east-1 $(SAM_BUILD_ARGS); \
	elif docker info >/dev/null 2>&1; then \
		$(SAM) build --region us-east-1 --use-container $(SAM_BUILD_ARGS); \
	else \
		echo "sam build needs a working python3.13 on PATH or a running Docker (for --use-container)" >&2; exit 2; \
	fi

clean:
	rm -rf $(VENV) .venv-sam .aws-sam out .mypy_cache .ruff_cache .hypothesis

# --- The Lambda layer (docs/decisions.md, "The layer") -------------------------------------------
# The same target sam build runs (template.yaml: DunningLayer, BuildMethod makefile), into out/layer:
# arm64 / CPython 3.13 wheels, no runtime packages, pruned data. LAYER_PLATFORM=host builds this
# interpreter's twin (what the tests import). pip results are cached in out/layer-cache.
.PHONY: layer
LAYER_PLATFORM ?= manylinux2014_aarch64
layer: $(STAMP)
	$(MAKE) -C layers/dunning build-DunningLayer ARTIFACTS_DIR=$(CURDIR)/out/layer \
		PYTHON=$(CURDIR)/$(BIN)/python LAYER_CACHE=$(CURDIR)/out/layer-cache LAYER_PLATFORM=$(LAYER_PLATFORM)
	@du -sh --apparent-size out/layer/python

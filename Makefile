# Everything starts from a fresh machine with Python >= 3.11 and make: the first target that needs the
# virtual environment creates it and installs the project (editable) with its dev extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help test lint typecheck cfn-lint unit demo bench soak clean sam-validate

help:
	@echo "make demo   - realistic collections run on embedded AWS (moto), report at the end"
	@echo "make test   - ruff, mypy, cfn-lint and the whole pytest suite"
	@echo "make bench  - benchmarks (requests, capacity units, throughput, cold start) -> docs/benchmarks.md"
	@echo "make soak   - the state-machine test over SOAK_EXAMPLES random schedules (default 2000)"

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
soak: $(STAMP)
	SOAK_EXAMPLES=$(SOAK_EXAMPLES) $(BIN)/pytest tests/property/test_state_machine.py -k soak -s -p no:logging

# aws-sam-cli pins an older boto3, so it lives in its own virtual environment.
sam-validate:
	test -x .venv-sam/bin/sam || ($(PYTHON) -m venv .venv-sam && .venv-sam/bin/pip install --quiet aws-sam-cli)
	.venv-sam/bin/sam validate --region us-east-1 --lint

clean:
	rm -rf $(VENV) .venv-sam .aws-sam out .mypy_cache .ruff_cache .hypothesis

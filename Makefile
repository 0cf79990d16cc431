# Batch predictions on AWS serverless. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.DEFAULT_GOAL := help
.PHONY: help setup test test-fast lint format validate serve demo bench faults clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@py=$$(scripts/find-python) && echo "creating $(VENV) with $$py" && $$py -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install everything the project needs

test: $(STAMP) ## Run the whole test suite (unit, integration, template checks, faults, e2e)
	$(PY) -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP) ## Unit and integration tests only
	$(PY) -m pytest tests/unit tests/integration -q

lint: $(STAMP) ## ruff, mypy and the template validators
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(MAKE) --no-print-directory validate

format: $(STAMP) ## Format and autofix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

validate: $(STAMP) ## sam validate, sam validate --lint and cfn-lint on template.yaml
	$(VENV)/bin/sam validate --template template.yaml --region $(AWS_DEFAULT_REGION)
	$(VENV)/bin/sam validate --lint --template template.yaml --region $(AWS_DEFAULT_REGION)
	$(VENV)/bin/cfn-lint template.yaml

serve: $(STAMP) ## Run the local stack (moto + HTTP front + pollers) until Ctrl-C
	$(VENV)/bin/batchpredict-local serve

demo: $(STAMP) ## The main job: local stack, demo data, three 1,000+ entity jobs, summary, cache
	$(PY) -m batchpredict_local.demo

bench: $(STAMP) ## Benchmarks; writes bench/RESULTS.md
	$(PY) -m bench

faults: $(STAMP) ## The fault-injection suite with 1,000 seeds
	$(PY) -m pytest tests/faults --fault-seeds 1000 -q

clean: ## Remove the venv, build output and caches
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache out

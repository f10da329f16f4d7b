# hybridrec — `make help` lists the targets. Every target sets up .venv first if it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
PORT ?= 5000

.DEFAULT_GOAL := help
.PHONY: help install lock audit train test test-all test-browser lint format ui clean bench-ncf bench-recbole

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The install prints one progress line; pip's full output goes to .venv/install.log (shown
# when the install fails). requirements.lock pins every dependency (made by `make lock` from
# pyproject.toml's loose ranges and constraints.txt); its torch pin carries no local label, so
# GPU users who install their CUDA build of torch 2.13.0 into .venv first keep it.
$(STAMP): pyproject.toml constraints.txt requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) (full log: $(VENV)/install.log)"
	@set -o pipefail; { $(BIN)/pip install --progress-bar off --upgrade pip \
	  && $(BIN)/pip install --progress-bar off -c requirements.lock -e '.[dev]'; } 2>&1 \
	  | tee $(VENV)/install.log | while IFS= read -r line; do \
	    printf '\r\033[K  %.100s' "$$line"; done \
	  || { printf '\n'; tail -n 30 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@printf '\r\033[K  installed hybridrec and its dependencies into $(VENV)\n'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install hybridrec with its dev tools

lock: $(STAMP) ## refresh requirements.lock: the newest releases pyproject.toml and constraints.txt allow
	$(BIN)/pip install --progress-bar off -q -c requirements.lock pip-tools
	$(BIN)/pip-compile -q --upgrade --extra dev -c constraints.txt --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	sed -i -E 's/^(torch==[^+ ]+)\+[a-z0-9]+/\1/' requirements.lock
	@echo "requirements.lock refreshed: run make test, then commit it"

audit: $(STAMP) ## pip-audit over requirements.lock (known vulnerabilities; needs the network)
	$(BIN)/pip install --progress-bar off -q -c requirements.lock pip-audit
	$(BIN)/pip-audit --requirement requirements.lock --no-deps --disable-pip --progress-spinner off $(ARGS)

train: $(STAMP) ## train the hybrid on the embedded synthetic data; prints the MLflow run and test metrics (ARGS="model.history=attention ...")
	$(BIN)/hybridrec-train experiment=hybrid_synthetic $(ARGS)

test: $(STAMP) ## run the test suite (not slow, not gpu): a few minutes on 2 cores
	$(BIN)/python -m pytest $(ARGS)

test-all: $(STAMP) ## also the slow tests (real datasets in ../shared, multi-process DDP)
	$(BIN)/python -m pytest -m "not gpu" $(ARGS)

# Debian's chromium + chromium-driver (apt, as root or through sudo); the screenshots are kept
# under outputs/browser-tests/ (each test's folder).
test-browser: $(STAMP) ## the MLflow UI in headless Chromium (installs chromium with apt; slow)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; }
	$(BIN)/python -m pytest -m browser tests/browser --basetemp=outputs/browser-tests $(ARGS)

lint: $(STAMP) ## ruff, ruff format --check, mypy, hadolint
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

# MLflow 3 opens on its GenAI view in a fresh browser (mlflow/mlflow#24498): the link printed
# asks for the Model training view (workflowType=machine_learning).
ui: $(STAMP) ## the MLflow UI on the local store (sqlite:///mlflow.db) at http://127.0.0.1:$(PORT) (PORT=5001 ...)
	@echo "runs: http://127.0.0.1:$(PORT)/#/experiments?workflowType=machine_learning"
	$(BIN)/mlflow server --backend-store-uri sqlite:///mlflow.db --workers 1 --host 127.0.0.1 --port $(PORT)

bench-ncf: $(STAMP) ## NCF ML-1M accuracy benchmarks (MF, NeuMF; see docs/benchmarks.md)
	$(BIN)/python scripts/bench_ncf_ml1m.py $(ARGS)

bench-recbole: $(STAMP) ## per-epoch time of our NeuMF vs RecBole 1.2.1 in one run
	bash scripts/setup_recbole.sh
	$(BIN)/python scripts/bench_speed_recbole.py $(ARGS)

clean: ## remove outputs, prepared data and the local MLflow store (keeps .venv)
	rm -rf outputs multirun data/prepared mlflow.db mlruns

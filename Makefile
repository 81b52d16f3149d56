# Two commands for a new machine: `make run` and `make test`. Both create .venv when
# missing and install exactly what requirements.lock pins, then the package itself.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/quickstart.yaml

.PHONY: install run test lint format bench lock clean cluster-up cluster-down

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/mlops-ray run $(CONFIG)

test: $(STAMP)
	$(BIN)/pytest

# ruff, then the package layers and the no-cycle rule of docs/architecture.md (import-linter, pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Every benchmark, each saving its stamped JSON to benchmarks/results/ (refused from a checkout with
# uncommitted code), then the README's result tables regenerated from those files.
bench: $(STAMP)
	$(BIN)/python benchmarks/quickstart_stages.py --save
	$(BIN)/python benchmarks/data_preprocessing.py --save
	$(BIN)/python benchmarks/training_throughput.py --save
	$(BIN)/python benchmarks/tune_overhead.py --save
	$(BIN)/python benchmarks/asha_vs_random.py --save
	$(BIN)/python benchmarks/serve_latency.py --save
	$(BIN)/python benchmarks/monitor_window.py --save
	$(BIN)/python benchmarks/report.py

# A local multi-node Ray cluster (head + worker node, token auth) and an MLflow server: docs/cluster.md.
cluster-up: $(STAMP)
	$(BIN)/python cluster/local/cluster.py up

cluster-down: $(STAMP)
	$(BIN)/python cluster/local/cluster.py down

# Re-pin every package from what the current .venv holds.
lock:
	{ sed -n '1,2p' requirements.lock; $(BIN)/python -m pip freeze --all --exclude-editable \
	  | grep -v -E '^(mlops-ray|pip)==' | sed 's/^torch==2.13.0+cpu/torch==2.13.0/'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) mlflow.db mlartifacts .mlops-ray

# `make demo` and `make test` each set everything up from nothing: a .venv with the pinned stack.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export MPLBACKEND := Agg

.PHONY: demo tour test bench install clean lint lock

# requirements/lock.txt pins every package of the tested stack (the dev extra) with its sha256 hashes;
# vlmkit itself then goes in without resolving anything again.
$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# Refresh the lock after changing dependencies in pyproject.toml or requirements/ci.txt: keeps the current pins
# where they still fit; `make lock UPGRADE=1` moves everything to the newest allowed releases.
UV_VERSION := 0.13.9
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28
lock:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml --extra dev --constraint requirements/ci.txt $(LOCK_TARGET) \
	  --generate-hashes --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade) -o requirements/lock.txt

install: $(STAMP)

# The quickstart: ShapesVQA -> English base -> Vietnamese LoRA -> eval/compare/report, offline on a CPU.
demo: $(STAMP)
	$(BIN)/vlmkit quickstart --out quickstart

# A tour of the other verbs (import, stats, split, export, infer) on a small LLaVA-format dataset.
tour: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh demo_out

test: $(STAMP)
	bash scripts/test-system-deps.sh
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# ruff: the rule set and line length live in pyproject.toml ([tool.ruff]).
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache

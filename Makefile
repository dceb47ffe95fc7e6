# Two commands set everything up on a fresh machine with Python 3.11+ and make:
#   make run    start ccm-tui (offers the built-in demo providers when no keys are configured)
#   make test   lint + the whole test suite (installs the pinned Claude Code CLI for the end-to-end tests)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CLAUDE_CODE_VERSION := 2.1.330
CLAUDE := build/claude/node_modules/.bin/claude
# Peers the bench compares ccm-tui with (bench/peers.py), pinned, installed once into ignored directories.
CCR_VERSION := 2.0.0
CCR := build/peers/ccr/node_modules/@musistudio/claude-code-router/dist/cli.js
LITELLM_VERSION := 1.106.2
LITELLM_BIN := build/peers/litellm/bin/litellm
LITELLM ?=
ARGS ?=

.PHONY: run serve demo test lint format bench bench-quick bench-profile bench-peers snapshots clean

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# The CLI is a few hundred MB: installed once into an ignored directory, pinned.
$(CLAUDE):
	mkdir -p build/claude
	cd build/claude && npm install --no-audit --no-fund --loglevel=error @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)

run: $(BIN)/.installed
	$(BIN)/ccm-tui $(ARGS)

demo: $(BIN)/.installed
	$(BIN)/ccm-tui --demo $(ARGS)

serve: $(BIN)/.installed
	$(BIN)/ccm-tui serve $(ARGS)

# Style, types (mypy, settings in pyproject.toml) and the import layers (lint-imports, contracts in pyproject.toml).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint $(CLAUDE)
	$(BIN)/pytest -q

snapshots: $(BIN)/.installed
	$(BIN)/pytest -q tests/test_tui_snapshots.py --snapshot-update

bench: $(BIN)/.installed
	$(BIN)/python -m bench.run

bench-quick: $(BIN)/.installed
	$(BIN)/python -m bench.run --quick

$(CCR):
	mkdir -p build/peers/ccr
	cd build/peers/ccr && npm install --no-audit --no-fund --loglevel=error @musistudio/claude-code-router@$(CCR_VERSION)

$(LITELLM_BIN):
	$(PYTHON) -m venv build/peers/litellm
	build/peers/litellm/bin/pip install --quiet 'litellm[proxy]==$(LITELLM_VERSION)'

# ccm-tui beside Claude Code Router; `make bench-peers LITELLM=1` adds LiteLLM proxy (its own venv).
# The run prints its own duration at the end (CCR only: 55 s; with LiteLLM: 466 s on the 2-core machine).
bench-peers: $(BIN)/.installed $(CCR) $(if $(LITELLM),$(LITELLM_BIN))
	$(BIN)/python -m bench.peers $(if $(LITELLM),--litellm) $(ARGS)

# py-spy summaries of the heavy points (bench/results/profile-*.md)
bench-profile: $(BIN)/.installed
	$(BIN)/python -m bench.run --profile b:64 --profile c:256 --profile b:64:tui

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache

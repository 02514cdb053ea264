# airmark: `make demo` runs the whole chain without hardware, `make test` runs the tests.
PY ?= python3
STAMP := .deps-stamp
OUT ?= out
BOARD ?= pico-inmp441
PORT ?=
FILE ?=
DRIVE ?=
DEVICE ?=
# made by `make demo`, or pass KEY=your-key.json
KEY ?= $(OUT)/demo/key.json

.PHONY: help deps demo test bench corpus calibrate eval mpy clean flash monitor play

help:
	@echo "make demo       embed -> simulated 6.1 m room -> firmware detector -> result"
	@echo "make test       run the test suite"
	@echo "make bench      per-hop detector cost and RP2040/ESP32 estimates"
	@echo "make corpus     build the evaluation corpus from Debian packages"
	@echo "make calibrate  set the default threshold from unmarked audio"
	@echo "make eval       the over-the-air evaluation report"
	@echo "make mpy        compile the firmware with mpy-cross (armv6m, xtensawin)"
	@echo "make flash BOARD=$(BOARD) PORT=/dev/ttyACM0 | make monitor | make play FILE=x.wav"

$(STAMP): pyproject.toml tools/install_deps.sh
	PY=$(PY) bash tools/install_deps.sh
	@touch $(STAMP)

deps: $(STAMP)

demo: deps
	$(PY) tools/demo.py --out $(OUT)/demo

test: deps
	$(PY) -m pytest -q

bench: deps
	$(PY) tools/bench.py
	$(PY) tools/bench_host.py
	micropython tools/bench_viper.py
	$(PY) tools/thumb_emu.py

corpus: deps
	PY=$(PY) bash tools/install_deps.sh --corpus
	$(PY) tools/build_corpus.py corpus

corpus/manifest.json:
	$(MAKE) corpus

calibrate: deps corpus/manifest.json
	$(PY) tools/calibrate.py --corpus corpus --key-seeds 48 --jobs 2

eval: deps corpus/manifest.json
	airmark eval --corpus corpus --key $(KEY) --out $(OUT)/eval

mpy: deps
	@mkdir -p $(OUT)/mpy/armv6m $(OUT)/mpy/xtensawin
	@# modules marked "airmark: thumb-only" hold Thumb assembly: ARM boards only
	@for f in firmware/*.py; do \
	  b=$$(basename $$f .py); \
	  mpy-cross -march=armv6m -o $(OUT)/mpy/armv6m/$$b.mpy $$f || exit 1; \
	  grep -q "^airmark: thumb-only" $$f || \
	    mpy-cross -march=xtensawin -o $(OUT)/mpy/xtensawin/$$b.mpy $$f || exit 1; \
	done; echo "compiled into $(OUT)/mpy"

flash: deps
	airmark flash --board $(BOARD) --key $(KEY) $(if $(PORT),--port $(PORT)) $(if $(DRIVE),--drive $(DRIVE))

monitor: deps
	airmark monitor $(if $(PORT),--port $(PORT))

play: deps
	airmark play $(FILE) $(if $(PORT),--port $(PORT)) $(if $(DEVICE),--device $(DEVICE))

clean:
	rm -rf $(OUT) .pytest_cache $(STAMP)

# ComfyUI-RALU developer tasks. Everything made here (the ComfyUI host, its venv, the random-weight
# test models) lives under .comfy/, which git ignores; see scripts/setup.sh and tests/models/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PORT ?= 8188
# Random-weight models in ComfyUI's folder layout (diffusion_models/, text_encoders/, vae/, vae_approx/).
MODELS_DIR ?= $(CURDIR)/.comfy/test-models
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-m 'not server' -x"`.
PYTEST_ARGS ?=

# The host that scripts/setup.sh wrote to .comfy/host: line 1 the ComfyUI folder, line 2 its python.
# Read by the shell when a recipe runs (after `setup`), so a clean clone works in one `make test`.
HOST_FILE := $(CURDIR)/.comfy/host
COMFY_DIR = "$$(sed -n 1p $(HOST_FILE))"
PY = "$$(sed -n 2p $(HOST_FILE))"

.PHONY: help setup models serve test test-min-deps test-compat lint

help:
	@echo "make setup   ComfyUI host + venv under .comfy/ (COMFYUI_DIR=/path uses an existing ComfyUI)"
	@echo "make models  build the random-weight test models into $(MODELS_DIR) (cached)"
	@echo "make serve   ComfyUI with this pack on the CPU at http://127.0.0.1:$(PORT) (PORT=...)"
	@echo "make test    setup + models + the whole pytest suite"
	@echo "make test-min-deps  the unit tests with the lowest numpy and scipy that requirements.txt allows"
	@echo "make bench   RALU against the plain sampler in one process: speed-ups, FLOPs, memory (BENCH_ARGS=...)"
	@echo "make test-compat  the whole suite on a second, newer ComfyUI tree (COMPAT_COMFYUI_DIR=...)"
	@echo "make lint    ruff check"

setup:
	bash scripts/setup.sh

models: setup
	$(PY) -m tests.models --dir "$(MODELS_DIR)"

# The host's own base folder (the pack is linked into its custom_nodes by setup), headless on the CPU,
# with the test models visible through the extra_model_paths.yaml that `models` writes next to them.
serve: models
	cd $(COMFY_DIR) && exec $(PY) main.py --cpu --listen 127.0.0.1 --port $(PORT) --disable-api-nodes \
		--preview-method auto --extra-model-paths-config "$(MODELS_DIR)/extra_model_paths.yaml"

# The browser tests need Chromium: installed through apt when we are root (CI), else the script says how.
test: models
	bash scripts/install_browser.sh
	RALU_REQUIRE_HOST=1 RALU_TEST_MODELS_DIR="$(MODELS_DIR)" $(PY) -m pytest tests $(PYTEST_ARGS)

# The floors that requirements.txt declares, proven: exactly those numpy and scipy, installed into
# $(MIN_DEPS_DIR) (with an OpenCV that accepts that numpy, for test_canny), first on the path of the
# host's python for the unit tests. Fails unless the versions imported are the declared floors.
MIN_DEPS_DIR := $(CURDIR)/.comfy/min-deps
test-min-deps: setup
	@set -euo pipefail; \
	numpy="$$(sed -n 's/^numpy>=\([0-9][0-9.]*\)$$/\1/p' requirements.txt)"; \
	scipy="$$(sed -n 's/^scipy>=\([0-9][0-9.]*\)$$/\1/p' requirements.txt)"; \
	if [ -z "$$numpy" ] || [ -z "$$scipy" ]; then \
		echo "requirements.txt must declare numpy>=X and scipy>=Y" >&2; exit 1; fi; \
	stamp="$(MIN_DEPS_DIR)/.installed-numpy-$$numpy-scipy-$$scipy"; \
	if [ ! -f "$$stamp" ]; then \
		rm -rf "$(MIN_DEPS_DIR)"; \
		$(PY) -m pip install --quiet --target "$(MIN_DEPS_DIR)" "numpy==$$numpy" "scipy==$$scipy" \
			opencv-python-headless 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; \
		touch "$$stamp"; \
	fi; \
	export PYTHONPATH="$(MIN_DEPS_DIR)"; \
	$(PY) -c 'import sys, cv2, numpy, scipy; \
		print(f"test-min-deps: numpy {numpy.__version__}, scipy {scipy.__version__}, cv2 {cv2.__version__}"); \
		floors = tuple(sys.argv[1:]); found = (numpy.__version__, scipy.__version__); \
		sys.exit(0 if found == floors else f"expected numpy, scipy {floors}, imported {found}")' "$$numpy" "$$scipy"; \
	RALU_REQUIRE_HOST=1 RALU_TEST_MODELS_DIR="$(MODELS_DIR)" $(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Extra arguments for scripts/bench.py, e.g. `make bench BENCH_ARGS="--repeats 3"`, "--size 256 --rows
# flux_4x,flux_7x", "--family sd3" or "--gpu" (FLUX.1-dev's, or SD3 Medium's, dimensions at 1024x1024 on
# a CUDA GPU).
BENCH_ARGS ?=

.PHONY: bench
# The plain sampler, naive step reduction, every FLUX.1-dev (or SD3 Medium) RALU preset and the step
# caches, in-process through ComfyUI's classes (CPU: 512x512, one timed round; FLUX about 7.5 minutes on
# 2 cores, SD3 about 4); a Markdown table on stdout, with a JSON copy, in bench_output/.
bench: setup models
	$(PY) scripts/bench.py --models-dir "$(MODELS_DIR)" $(BENCH_ARGS)

# The whole suite again on a second ComfyUI (default .comfy/compat/ComfyUI, the newer tree the README
# names), with its own venv, models and host file under .comfy/compat: the main host is left as it is.
# Without that tree, scripts/setup_compat.sh says how to get it and this target skips (CI has none).
COMPAT_DIR := $(CURDIR)/.comfy/compat
test-compat:
	@set -euo pipefail; \
	bash scripts/setup_compat.sh; \
	[ -f "$(COMPAT_DIR)/host" ] || exit 0; \
	export COMFYUI_DIR="$$(sed -n 1p "$(COMPAT_DIR)/host")" COMFYUI_PYTHON="$$(sed -n 2p "$(COMPAT_DIR)/host")"; \
	"$$COMFYUI_PYTHON" -m tests.models --dir "$(COMPAT_DIR)/test-models"; \
	bash scripts/install_browser.sh; \
	RALU_REQUIRE_HOST=1 RALU_TEST_MODELS_DIR="$(COMPAT_DIR)/test-models" "$$COMFYUI_PYTHON" -m pytest tests $(PYTEST_ARGS)

lint:
	@if [ -f "$(HOST_FILE)" ]; then set -x; $(PY) -m ruff check .; else set -x; ruff check .; fi

# ---------------------------------------------------------------------------------------------------
# demo: RESERVED. The `demo` target is written by its owner and goes here (it may use $(PY),
# $(COMFY_DIR), $(MODELS_DIR) and `models`; outputs belong in demo_output/, which git ignores).
# ---------------------------------------------------------------------------------------------------
# Extra arguments for scripts/demo.py, e.g. `make demo DEMO_ARGS="--size 512"` or "--models test".
DEMO_ARGS ?=

.PHONY: demo
# The shipped RALU workflows (FLUX 4x / 7x, SD3 2x / 3x) and their plain comparisons (50 / 28 steps)
# through a real server's HTTP API; pictures and a timing table in demo_output/. Test models unless
# COMFYUI_DIR has the stock FLUX.1-dev and SD3 Medium files.
demo: setup models
	$(PY) scripts/demo.py --models-dir "$(MODELS_DIR)" $(DEMO_ARGS)

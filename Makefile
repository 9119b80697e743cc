# `make test` and `make demo` set everything up on a fresh machine: a .venv with
# torch/torchvision pinned by constraints.txt, vla-core and every shipped plugin installed
# editable. The test-only plugins (tests/plugins/) are installed by the test run itself,
# into build/test-plugins (tests/conftest.py), so the user's environment never lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.installed
PLUGIN_PROJECTS := $(sort $(wildcard plugins/*/pyproject.toml))
TEST_PLUGIN_NAMES := vla-example-head vla-broken
EDITABLES := -e . $(foreach p,$(PLUGIN_PROJECTS),-e $(dir $(p)))
PYTEST_ARGS ?=
# Python compiles what it imports once, into __pycache__ (installs run with --no-compile below),
# unless PYTHONDONTWRITEBYTECODE is set, as it is in some CI images: then every interpreter the
# tests start (torchrun workers, `vla` CLIs, fresh-process checks) compiled torch and
# transformers from source again: `import torch, transformers` took 25 s instead of 7 s.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install gl-libs test lint demo clean

$(STAMP): pyproject.toml constraints.txt $(PLUGIN_PROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt "setuptools>=68" wheel
	@# --no-compile: byte-compiling all of torch's and transformers' files took half of the
	@# install (194 s -> 113 s for torch alone); Python compiles what it imports, once.
	$(PIP) install -q --no-compile -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q --no-compile -c constraints.txt --no-build-isolation $(EDITABLES) pytest pytest-xdist ruff
	@# venvs made before the test plugins moved out of it: take them out again
	$(PIP) uninstall -q -y $(TEST_PLUGIN_NAMES) 2>/dev/null || true
	touch $(STAMP)

install: gl-libs $(STAMP)

# Offscreen OpenGL for vla-metaworld (Mesa's EGL + software rasteriser); apt-get runs only when missing.
gl-libs:
	@ldconfig -p | grep -q 'libEGL_mesa.so' && ls /usr/lib/*/dri/swrast_dri.so /usr/lib/dri/swrast_dri.so 2>/dev/null | grep -q . \
	  || { command -v apt-get >/dev/null || { echo "Install Mesa's EGL (Debian/Ubuntu: libegl1 libgl1-mesa-dri) for rendering"; exit 1; }; \
	       SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	       $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libegl1 libgl1-mesa-dri; }

lint: install
	$(BIN)/ruff check .

test: install lint
	@$(BIN)/python -c "from vla_core.precision import describe_cpu, resolve_precision as r; \
	  print('torch sees:', describe_cpu()); print('auto ->', r('auto', 'cpu').describe())"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The first run: expert demos -> train configs/quickstart.yaml -> success on unseen layouts,
# next to the scripted expert and a random policy (docs/evaluation.md). One math thread:
# two OpenMP threads spin against the data worker on 2 cores.
DEMO_DIR := runs/quickstart
DEMO_TASKS := drawer-close,button-press-topdown,window-open
demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/vla data generate --env metaworld --tasks $(DEMO_TASKS) --episodes 20 --image-size 64 --workers 2 --out $(DEMO_DIR)/data
	OMP_NUM_THREADS=1 $(BIN)/vla train configs/quickstart.yaml
	OMP_NUM_THREADS=1 $(BIN)/vla eval $(DEMO_DIR) --env metaworld --tasks $(DEMO_TASKS) --episodes 20 --seed 1000 \
	  --execute-steps 4 --baselines expert,random --video $(DEMO_DIR)/videos --output $(DEMO_DIR)/eval.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build/test-plugins

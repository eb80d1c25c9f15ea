# The README's two set-up commands: `make demo` and `make test`. Both create .venv if needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean chromium suite

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch is pinned to the CPU wheel first so no other requirement pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	# ray: the tests start a real local Ray cluster; verl: Hydra, to compose VeRL's configuration
	$(BIN)/pip install -q -e '.[all,bench,dev,ray,verl]'
	# DEHB 0.1.2 pins numpy<2 but runs on numpy 2: installed without its pins
	$(BIN)/pip install -q --no-deps 'dehb==0.1.2'
	# VeRL without its GPU stack: its packaged Hydra config is what the verl preset is tested against
	$(BIN)/pip install -q --no-deps 'verl==0.9.1'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf demo-study
	$(BIN)/jfhpo run examples/demo.yaml --out demo-study
	$(BIN)/jfhpo report demo-study --out demo-study/report.html

# The browser test opens the HTML report in headless Chromium (Debian package `chromium`). It is
# installed here when missing and apt-get can run (as root or with password-less sudo); elsewhere
# the test is skipped and prints why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "chromium: not installed and apt-get cannot run here; the browser test will be skipped"; exit 0; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    || echo "chromium: apt-get install failed; the browser test will be skipped"; }

test: $(STAMP) chromium
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

# The benchmark suite's main pass (20 seeds; about 9 minutes on 2 cores): the tables the README
# quotes, in bench/results/suite/. The jfhpo ablations are a separate, longer pass (bench/suite/).
suite: $(STAMP)
	$(BIN)/python bench/suite/run.py --seeds 20 --methods recipe manual random hyperband bohb \
	  optuna_tpe_hyperband optuna_asha smac_mf dehb jfhpo

clean:
	rm -rf demo-study .pytest_cache .mypy_cache .ruff_cache

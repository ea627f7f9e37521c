# `make demo` and `make test` set everything up on a fresh machine: .venv, Python packages, Debian packages.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU machines this project is developed on have this pair on local disk; a GPU user may override, e.g.
#   make test TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
DEBIAN_PACKAGES ?= postgresql chromium tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim fonts-noto-cjk fonts-dejavu-core fonts-liberation

.PHONY: demo test lint format clean

$(VENV)/.installed: pyproject.toml Makefile
	@if [ -n "$(DEBIAN_PACKAGES)" ] && [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# Quiet: pip's output goes to a log, shown whole only when an install fails.
	@echo "installing Python packages into $(VENV) (log: $(VENV)/pip.log)"
	@$(PY) -m pip install -q --upgrade pip > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PY) -m pip install -q $(TORCH_SPEC) >> $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PY) -m pip install -q -e ".[dev]" >> $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	touch $@

# The bundled demo model (recipes/tiny-demo.yaml): a word poster, then an edit of its word.
DEMO_MODEL ?= checkpoints/tiny-demo
DEMO_PROMPT := A poster that reads "HELLO" in black bold monospaced letters, left-aligned on a flat white background.
DEMO_EDIT := Make the text read "WORLD" instead of "HELLO".
# Guidance 2 against an empty prompt: the demo model's best measured setting (README, The demo model).
# The edit conditions at the model's training side (128, from its model_index.json).
DEMO_SAMPLING := --size 128x128 --steps 20 --seed 0 --guidance 2 --negative-prompt ''
# The bundled prompt enhancer (the SFT run's export; README: The prompt enhancer) turns what a person
# types into the poster description the demo model draws.
DEMO_ENHANCER ?= checkpoints/tiny-enhancer
DEMO_ASK := can you make a poster that says "HELLO"

demo: $(VENV)/.installed
	$(VENV)/bin/qwen-image2 generate '$(DEMO_PROMPT)' --model $(DEMO_MODEL) $(DEMO_SAMPLING) --out outputs/demo/generate.png
	$(VENV)/bin/qwen-image2 edit '$(DEMO_EDIT)' --image outputs/demo/generate.png --model $(DEMO_MODEL) $(DEMO_SAMPLING) --out outputs/demo/edit.png
	$(VENV)/bin/qwen-image2 generate '$(DEMO_ASK)' --enhance $(DEMO_ENHANCER) --model $(DEMO_MODEL) $(DEMO_SAMPLING) --out outputs/demo/enhanced.png
	@echo "demo images: outputs/demo/generate.png outputs/demo/edit.png outputs/demo/enhanced.png"

test: $(VENV)/.installed
	$(PY) -m pytest -q

# ruff, then the layer contract in pyproject.toml ([tool.importlinter]): imports only point down.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

format: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) outputs

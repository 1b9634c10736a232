# payport developer commands. `make run` and `make test` are the README quick start.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps run test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/payport serve

# Debian packages the tests drive (Chromium for the checkout browser tests). Installed when
# missing and apt-get can run as root; otherwise those tests say why they skip (CI=true: fail).
SYSTEM_PACKAGES := /usr/bin/chromium:chromium

system-deps:
	@for pair in $(SYSTEM_PACKAGES); do \
	  file=$${pair%%:*}; package=$${pair##*:}; \
	  if [ ! -e $$file ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing $$package (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$package) \
	      >/dev/null || echo "could not install $$package"; \
	  fi; \
	done

test: install system-deps
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src/payport

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache payport.db payport.db-wal payport.db-shm

# The README's two commands: `make demo` starts the service on SQLite with demo data, `make test` runs every test.
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test system-packages lint openapi bench

demo:
	$(PYTHON) -m pip install -q -e . && $(PYTHON) -m api.cli serve --demo

test: system-packages
	$(PYTHON) -m pip install -q -e '.[test]'
	ruff check .
	mypy
	$(PYTHON) -m pytest

# Browser tests drive Debian's Chromium (never a downloaded browser); CJK fonts make Chinese render.
system-packages:
	@if ! command -v chromium >/dev/null || ! command -v wrk >/dev/null || ! fc-list 2>/dev/null | grep -qi 'noto.*cjk'; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-noto-cjk wrk; \
	fi

lint:
	ruff check . && ruff format --check . && mypy

openapi:
	certseal openapi --out openapi.yaml

bench:
	$(PYTHON) bench/bench_verify.py && $(PYTHON) bench/bench_http.py

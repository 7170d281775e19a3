# The README's two commands: `make demo` starts the service on SQLite with demo data, `make test` runs every test.
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test system-packages lint openapi bench lock

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

# The Docker image's dependency lock, with hashes (uv: resolves for the image's platform, Linux x86-64 glibc
# 2.36 and Python 3.11, from any machine, and keeps the pins already in requirements.lock unless told
# otherwise: `make lock UV_ARGS=--upgrade` moves every package to its newest allowed version).
lock:
	$(PYTHON) -m pip install -q 'uv>=0.5'
	uv pip compile pyproject.toml deploy/build-system.in --extra postgres --extra redis --generate-hashes \
		--python-version 3.11 --python-platform x86_64-manylinux_2_36 --no-annotate \
		--custom-compile-command 'make lock' $(UV_ARGS) -o requirements.lock

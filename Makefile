# The README's two commands: `make demo` starts the service on SQLite with demo data, `make test` runs every test.
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test system-packages card-font postgres-running lint openapi bench lock

demo: card-font
	$(PYTHON) -m pip install -q -e . && $(PYTHON) -m api.cli serve --demo

# The demo's printed cards need a TrueType CJK font; without apt the service still starts, and says why
# card PDFs answer 503 card_font_missing.
CARD_FONT := /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf
card-font:
	@[ -f $(CARD_FONT) ] || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		fonts-droid-fallback; } || echo "no fonts-droid-fallback: card PDFs need CERTSEAL_CARD_FONT_FILE (a TrueType CJK font)"

# The suite on SQLite (PostgreSQL-marked and concurrency tests included), then every test that uses the
# test database again on PostgreSQL (a fresh database per test, copied from a migrated template).
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

test: system-packages postgres-running
	$(PYTHON) -m pip install -q -e '.[test]'
	ruff check .
	mypy
	$(PYTHON) -m pytest
	CERTSEAL_TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) $(PYTHON) -m pytest

# CI machines run PostgreSQL and Redis; start the PostgreSQL cluster if it is installed but stopped.
postgres-running:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { $(SUDO) pg_ctlcluster $$(pg_lsclusters -h | awk 'NR==1 {print $$1, $$2}') start && sleep 2; }

# Browser tests drive Debian's Chromium (never a downloaded browser); CJK fonts make Chinese render.
# Printed cards embed Droid Sans Fallback (TrueType outlines; ReportLab cannot embed Noto Sans CJK's CFF).
system-packages:
	@if ! command -v chromium >/dev/null || ! command -v wrk >/dev/null || ! fc-list 2>/dev/null | grep -qi 'noto.*cjk' \
		|| [ ! -f $(CARD_FONT) ]; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-noto-cjk \
			fonts-droid-fallback wrk; \
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

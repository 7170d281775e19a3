# Base image pinned by exact tag and by digest (the multi-architecture index of python:3.11.14-slim-bookworm);
# bump both together, then rebuild and run the suite.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# Build stage: a virtual environment with the locked dependencies (hash-checked wheels only), then certseal.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /venv
COPY requirements.lock ./
# Every package, setuptools (certseal's build backend) included, comes from the lock and must match its hash.
RUN /venv/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY api ./api
COPY crypto ./crypto
COPY schemas ./schemas
# certseal itself: no dependency and no build backend is fetched here (both came from the lock above).
RUN /venv/bin/pip install --no-deps --no-build-isolation . && /venv/bin/pip check

# Runtime stage: the environment, a non-root user, the data volume and a health check.
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:$PATH \
    CERTSEAL_DATABASE_URL=sqlite:////data/certseal.db
# Printed cards (GET …/card.pdf, …/cards.pdf) embed a subset of Droid Sans Fallback (Apache-2.0).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-droid-fallback && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --create-home certseal
COPY --from=build /venv /venv
COPY deploy/docker-entrypoint.sh /usr/local/bin/certseal-entrypoint
USER 10001:10001
WORKDIR /data
# Single-machine mode keeps the SQLite registry and the encrypted signing keys here: mount a named volume.
VOLUME /data
EXPOSE 8000
# Liveness only (/healthz never touches the database); compose and the proxy check readiness (/readyz).
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
# Secrets (CERTSEAL_ADMIN_TOKEN, CERTSEAL_KEY_PASSPHRASE, CERTSEAL_ID_HMAC_KEY, CERTSEAL_URL_SIGNING_KEY, each
# also as …_FILE) and CERTSEAL_PUBLIC_BASE_URL come from the environment; add --demo only to try it out.
# Run through sh, so the script needs no execute bit (a checkout may lose it).
ENTRYPOINT ["/bin/sh", "/usr/local/bin/certseal-entrypoint"]
CMD ["certseal", "serve", "--host", "0.0.0.0", "--port", "8000"]

# Build stage: build wheels for certseal and its dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY crypto ./crypto
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres]'

# Runtime stage: only the wheels, a non-root user, and a health check.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CERTSEAL_DATABASE_URL=sqlite:////data/certseal.db
RUN useradd --system --uid 10001 --home-dir /data --create-home certseal
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels certseal[postgres] && rm -rf /wheels
USER certseal
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
# Secrets (CERTSEAL_ADMIN_TOKEN, CERTSEAL_KEY_PASSPHRASE, CERTSEAL_ID_HMAC_KEY, CERTSEAL_URL_SIGNING_KEY)
# and CERTSEAL_PUBLIC_BASE_URL come from the environment; add --demo only to try it out.
CMD ["certseal", "serve", "--host", "0.0.0.0", "--port", "8000"]

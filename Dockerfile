# Serving image: onnxruntime + tokenizers + numpy on the request path; no torch, sklearn or mlflow.
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ROUTER_HOST=0.0.0.0 \
    ROUTER_PORT=8080 \
    ROUTER_PROBE_HOST=0.0.0.0 \
    ROUTER_PROBE_PORT=8090 \
    ROUTER_MODEL_DIR=/app/models/default \
    ROUTER_POLICY=/app/policies/default.yaml \
    ROUTER_DATA_DIR=/var/lib/learned-router

WORKDIR /app
COPY requirements/serve.lock requirements/serve.lock
RUN pip install -r requirements/serve.lock "psycopg[binary]==3.3.9"  # + the PostgreSQL log
COPY pyproject.toml README.md ./
COPY router_service router_service
COPY training/__init__.py training/__init__.py
RUN pip install --no-deps .
COPY models/default models/default
COPY policies policies

RUN useradd --system --uid 10001 router && mkdir -p /var/lib/learned-router \
    && chown router /var/lib/learned-router
USER router
VOLUME ["/var/lib/learned-router"]
EXPOSE 8080 8090
# The probe listener (ROUTER_PROBE_PORT): answered from its own thread, so a busy event loop
# on 8080 cannot fail the probe. Point Kubernetes liveness/readiness probes at 8090 too
# (not 8081: that is where the default policy looks for a local llama.cpp).
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8090/health', timeout=2)" || exit 1
# Paths come from ROUTER_MODEL_DIR / ROUTER_POLICY (absolute), the SQLite log goes under
# ROUTER_DATA_DIR: nothing depends on the working directory, which may be read-only.
CMD ["learned-router", "serve", "--host", "0.0.0.0", "--port", "8080"]

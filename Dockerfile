# syntax=docker/dockerfile:1
# Router image: python -m router_service (HTTP 8080, gRPC 50051), non-root, no build tools.
#
#   make models PANEL=ci            # the contract names build/models/<panel>/ artefacts
#   docker build --build-arg PANEL=ci -t robot-policy-router:0.1.0 .
#
# Triton runs in its own (NGC) image; this one only needs the router's runtime dependencies,
# pinned by requirements.lock through deploy/docker/router-requirements.txt.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first: this layer is reused until the lock or the list changes.
COPY requirements.lock deploy/docker/router-requirements.txt ./
RUN pip install -r router-requirements.txt -c requirements.lock && pip check
# Only the router and its client package: setuptools' package discovery skips the project's
# other packages (training, load tests) when their folders are absent.
COPY pyproject.toml README.md ./
COPY router_service ./router_service
COPY clients ./clients
RUN pip install --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
ARG PANEL=ci
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ROUTER_HOST=0.0.0.0 \
    ROUTER_HTTP_PORT=8080 \
    ROUTER_GRPC_PORT=50051 \
    ROUTER_CONTRACT_PATH=/app/deploy/contracts/${PANEL}.yaml
RUN groupadd --system --gid 10001 router \
    && useradd --system --uid 10001 --gid router --no-create-home --shell /usr/sbin/nologin router
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The contract's paths are relative to it (../../build/models/<panel>/...): keep that layout.
COPY deploy/contracts ./deploy/contracts
COPY build/models/${PANEL}/offline_matrix.json build/models/${PANEL}/norm_stats.json ./build/models/${PANEL}/
COPY build/models/${PANEL}/task_classifier ./build/models/${PANEL}/task_classifier
USER 10001:10001
EXPOSE 8080 50051
# slim images have no curl; the interpreter is there anyway.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# Exec form: the router is PID 1 and gets SIGTERM directly, so it can drain in-flight requests.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "router_service"]

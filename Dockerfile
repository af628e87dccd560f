# aipolicy: the operator (`aipolicy run`) and, later, the gateway (`aipolicy gateway`) in one image.
# Built by `make image` (hack/image.sh) from build/image/, which it fills beforehand with the
# dependency wheels and aipolicy's own wheel, so this build needs no network:
#   podman build --network=host --build-arg BASE=localhost/aipolicy-base:... -t aipolicy .
# Runs as a non-root user and works with a read-only root filesystem (nothing writes to it).
ARG BASE=python:3.12-slim

# ---- the dependencies: one venv, changing only when the wheels change ----
FROM ${BASE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build/image/wheels/ /wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -q --no-index --find-links /wheels -r /wheels/requirements.txt \
 && /opt/venv/bin/pip uninstall -q -y pip setuptools \
 # the kubernetes client's asyncio twin (68 MB): aipolicy imports only the synchronous client;
 # a test runs the operator from this image, so an import of it would fail there
 && rm -rf /opt/venv/lib/python3*/site-packages/kubernetes/aio \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib

# ---- aipolicy itself, apart, so a code change rebuilds one small layer ----
FROM deps AS app
COPY build/image/app/ /wheels-app/
RUN python3 -m venv /tmp/tools \
 && /tmp/tools/bin/pip install -q --no-index --no-deps --target /opt/aipolicy /wheels-app/*.whl \
 && rm -rf /opt/aipolicy/bin \
 && /opt/venv/bin/python -m compileall -q /opt/aipolicy

# ---- runtime: the base, the venv, the package; nothing else ----
FROM ${BASE}
LABEL org.opencontainers.image.title="aipolicy" \
      org.opencontainers.image.description="Kubernetes operator keeping AI workloads inside budgets and SLOs" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /opt/aipolicy /opt/aipolicy
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/opt/aipolicy \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
# 65532: the conventional "nonroot" uid (distroless); numeric so runAsNonRoot can verify it
USER 65532:65532
ENTRYPOINT ["python3", "-m", "aipolicy"]
CMD ["run", "--metrics-host=0.0.0.0"]

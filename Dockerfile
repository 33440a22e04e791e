# Build: docker build -t jitaccess:0.2.0 .   Run: jitaccess run (in-cluster config, Workload Identity).
# Tested without a Docker engine (tests/unit/test_image.py): hadolint lints this file, and the
# install step below is run in a fresh virtualenv.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin jitaccess
COPY --from=build /install /usr/local
# Read-only root filesystem: no bytecode is written at run time; /tmp is an emptyDir.
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001
# Liveness and readiness are HTTP probes on /healthz (--metrics-port) in the Deployment, not a
# Docker HEALTHCHECK, which Kubernetes ignores.
ENTRYPOINT ["jitaccess"]
CMD ["run", "--all-namespaces"]

# Build: make image (docker build -t jitaccess:VERSION ., VERSION from pyproject.toml).
# Run: jitaccess run (in-cluster config, Workload Identity). The operator only: the sandbox and
# the IAM emulator are another distribution (sandbox/) and are not in this image.
# Tested without a Docker engine (tests/unit/test_image.py): hadolint lints this file, and the
# two install steps below run in a fresh virtualenv.
#
# The base image by digest (python:3.11-slim, the multi-arch index): rebuilds get the same bytes
# until someone moves it on purpose; `docker buildx imagetools inspect python:3.11-slim` shows the
# current one (Renovate's docker-digest manager can keep it fresh).
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Every dependency, transitive ones included, at the version and the hash of the lock file
# (pip-compile --generate-hashes, `make lock`): a changed file on the index fails the build.
COPY requirements/operator.txt requirements/operator.txt
RUN pip install --no-cache-dir --require-hashes --prefix=/install -r requirements/operator.txt
COPY pyproject.toml README.md LICENSE ./
COPY operator/ operator/
RUN pip install --no-cache-dir --no-deps --prefix=/install .

FROM ${PYTHON_IMAGE}
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin jitaccess
COPY --from=build /install /usr/local
# Read-only root filesystem: no bytecode is written at run time; /tmp is an emptyDir.
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001
# Liveness and readiness are HTTP probes on /healthz and /readyz (--metrics-port) in the
# Deployment, not a Docker HEALTHCHECK, which Kubernetes ignores.
ENTRYPOINT ["jitaccess"]
CMD ["run", "--all-namespaces"]

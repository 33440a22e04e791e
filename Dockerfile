# Build: docker build -t jitaccess:0.1.0 .   Run: jitaccess run (in-cluster config, Workload Identity).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --uid 10001 --create-home jitaccess
COPY --from=build /install /usr/local
COPY crds/ /opt/jitaccess/crds/
ENV JITACCESS_CRDS_DIR=/opt/jitaccess/crds PYTHONUNBUFFERED=1
USER 10001
ENTRYPOINT ["jitaccess"]
CMD ["run", "--all-namespaces"]

# resilience-exporter container image.
#
# Builds offline from a local base: BASE_IMAGE needs only python3 (e.g. python:3.11-slim-bookworm,
# or a debootstrap of bookworm with python3). The Python wheels
# come from the build context (`wheels/`, made with `pip wheel . -w wheels` on a machine with the
# same Python minor version), so `docker build` needs no network.
#
#   pip wheel . -w wheels
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" -t resilience-exporter .
#   docker run -d -p 10099:10099 --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro resilience-exporter
#
# The Docker socket: mount it read-only and add the socket's group id (stat -c %g) so the
# non-root user may read it; without the pull guard the exporter only sends GET requests.
#
# arm64 (Raspberry Pi) from an amd64 machine: the same file with an arm64 BASE_IMAGE, an amd64
# BUILD_IMAGE and wheels fetched for the target (`pip download --platform manylinux2014_aarch64
# --only-binary=:all:`): README "Container image" has the commands.
ARG BASE_IMAGE=python:3.11-slim-bookworm
# The build stage only unpacks wheels and byte-compiles (.pyc files are the same on every CPU), so
# for another architecture it runs on a base of the build machine's own (BUILD_IMAGE, with the
# same Python minor version) and needs no emulation.
ARG BUILD_IMAGE=${BASE_IMAGE}

FROM ${BUILD_IMAGE} AS build
COPY wheels/ /wheels/
# A wheel is a zip archive: unpacking it into one directory is an install (no pip in the base).
RUN set -eu; mkdir -p /opt/resilience-exporter; \
    for wheel in /wheels/*.whl; do python3 -m zipfile -e "$wheel" /opt/resilience-exporter; done; \
    # the asyncio Kubernetes client (41 MB) is never imported: the exporter uses the sync one
    rm -rf /opt/resilience-exporter/kubernetes/aio; \
    find /opt/resilience-exporter -name '__pycache__' -prune -exec rm -rf {} +; \
    find /opt/resilience-exporter -name '*.pyi' -delete; \
    python3 -m compileall -q /opt/resilience-exporter; \
    # the textfile directory (Debian's path), so a fresh named volume mounted there is the user's
    mkdir -p /textfile/node-exporter

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG VERSION=0.1.0
# Set at build time: the commit the wheels were built from and the build's UTC time (RFC 3339).
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="resilience-exporter" \
      org.opencontainers.image.description="Failure states, retries and circuit breakers of Docker and Kubernetes workloads, for Prometheus." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/fleet/resilience-exporter" \
      org.opencontainers.image.url="https://github.com/fleet/resilience-exporter" \
      org.opencontainers.image.documentation="https://github.com/fleet/resilience-exporter#readme" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
COPY --from=build /opt/resilience-exporter /opt/resilience-exporter
COPY --from=build --chown=10001:10001 /textfile/node-exporter /var/lib/prometheus/node-exporter
ENV PYTHONPATH=/opt/resilience-exporter \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 10099
# Set the address with RESILIENCE_EXPORTER_WEB_LISTEN_ADDRESS (not the flag) so the check follows it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python3", "-m", "exporter.healthcheck"]
ENTRYPOINT ["python3", "-m", "exporter"]

# resilience-exporter container image.
#
# Builds offline from a local base: BASE_IMAGE needs only python3 (e.g. debian:bookworm-slim
# with python3, or a debootstrap of bookworm imported with `docker import`). The Python wheels
# come from the build context (`wheels/`, made with `pip wheel . -w wheels` on a machine with the
# same Python minor version), so `docker build` needs no network.
#
#   pip wheel . -w wheels
#   docker build --build-arg BASE_IMAGE=debian:bookworm-slim -t resilience-exporter .
#   docker run -d -p 10099:10099 --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro resilience-exporter
#
# The Docker socket: mount it read-only and add the socket's group id (stat -c %g) so the
# non-root user may read it; without the pull guard the exporter only sends GET requests.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
COPY wheels/ /wheels/
# A wheel is a zip archive: unpacking it into one directory is an install (no pip in the base).
RUN set -eu; mkdir -p /opt/resilience-exporter; \
    for wheel in /wheels/*.whl; do python3 -m zipfile -e "$wheel" /opt/resilience-exporter; done; \
    # the asyncio Kubernetes client (41 MB) is never imported: the exporter uses the sync one
    rm -rf /opt/resilience-exporter/kubernetes/aio; \
    find /opt/resilience-exporter -name '__pycache__' -prune -exec rm -rf {} +; \
    find /opt/resilience-exporter -name '*.pyi' -delete; \
    python3 -m compileall -q /opt/resilience-exporter

FROM ${BASE_IMAGE}
COPY --from=build /opt/resilience-exporter /opt/resilience-exporter
ENV PYTHONPATH=/opt/resilience-exporter \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 10099
# Set the address with RESILIENCE_EXPORTER_WEB_LISTEN_ADDRESS (not the flag) so the check follows it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python3", "-m", "exporter.healthcheck"]
ENTRYPOINT ["python3", "-m", "exporter"]

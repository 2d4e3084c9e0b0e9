# Every Facemint service image, parametrised by SERVICE (its folder under services/). `make images` stages the build
# context (build/images/<service>/: requirements.txt with hashes, the wheels it names, the workspace wheels) and runs
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=gateway --build-arg ENV_PREFIX=FACEMINT_GATEWAY_ \
#     --build-arg HTTP_PORT=8080 -t ghcr.io/facemint/gateway:0.1.0 build/images/gateway
# The build needs no network: wheels were downloaded (and hash-checked) on the host. Layers go from the least to the
# most often changed: venv, third-party wheels (pip install --require-hashes), then the workspace sources, so a
# one-line source change rebuilds only the last layers.
# Runs as uid/gid 10001 with a read-only root filesystem: only /tmp is written, and /var/lib/facemint (owned by 10001)
# where a volume holds state (the library's vectors in compose). The runtime stage has neither pip nor
# setuptools nor a compiler. BASE_IMAGE is pinned by digest; on a machine that cannot pull it, build the equivalent
# Debian 12 + Python 3.11 base with deploy/docker/build-base.sh and pass BASE_IMAGE=local/debian-python:bookworm.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INDEX=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/facemint
COPY wheels/ /wheels/
COPY requirements.txt /wheels/requirements.txt
RUN /opt/facemint/bin/pip install -q --require-hashes --no-deps --find-links /wheels -r /wheels/requirements.txt
ARG SERVICE
COPY app/ /app/
# The console script facemint-<service> is linked as facemint-service, the one ENTRYPOINT of every image. Loading its
# entry point proves at build time that nothing the service imports is missing, pip check that the closure is
# complete without setuptools; pip and setuptools (from the venv's bootstrap) are then removed.
RUN /opt/facemint/bin/pip install -q --no-deps /app/*.whl \
 && /opt/facemint/bin/pip uninstall -q -y setuptools \
 && /opt/facemint/bin/pip check \
 && /opt/facemint/bin/python -c "from importlib.metadata import entry_points as e; \
      e(group='console_scripts', name='facemint-${SERVICE}')['facemint-${SERVICE}'].load()" \
 && /opt/facemint/bin/pip uninstall -q -y pip \
 && ln -s "facemint-${SERVICE}" /opt/facemint/bin/facemint-service \
 && /opt/facemint/bin/python -m compileall -q /opt/facemint/lib

FROM ${BASE_IMAGE} AS runtime
# The base's own pip, setuptools and wheel (and Debian's bundled wheels) are removed: nothing installs at run time.
RUN rm -rf /usr/local/bin/pip* /usr/local/lib/python3.11/site-packages/pip* \
      /usr/local/lib/python3.11/site-packages/setuptools* /usr/local/lib/python3.11/site-packages/wheel* \
      /usr/local/lib/python3.11/site-packages/_distutils_hack /usr/local/lib/python3.11/site-packages/distutils-precedence.pth \
      /usr/share/python-wheels \
 && groupadd --system --gid 10001 facemint \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin facemint \
 && install -d -o 10001 -g 10001 /var/lib/facemint
COPY --from=build /opt/facemint /opt/facemint
ARG SERVICE
ARG ENV_PREFIX
ARG HTTP_PORT=8081
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/facemint/facemint
ARG LICENSES=NOASSERTION
ARG BASE_IMAGE
LABEL org.opencontainers.image.title="facemint-${SERVICE}" \
      org.opencontainers.image.description="Facemint ${SERVICE} service" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
ENV PATH=/opt/facemint/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/tmp \
    ${ENV_PREFIX}HTTP__HOST=0.0.0.0 \
    ${ENV_PREFIX}HTTP__PORT=${HTTP_PORT} \
    ${ENV_PREFIX}GRPC__HOST=0.0.0.0 \
    ${ENV_PREFIX}GRPC__PORT=50051
USER 10001:10001
WORKDIR /tmp
EXPOSE ${HTTP_PORT} 50051
ENTRYPOINT ["facemint-service"]

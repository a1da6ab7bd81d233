# nats-server with JetStream, built from the nats-server module version in
# go.mod, configured by deploy/nats/nats-server.conf.
#
# The build context (deploy/build-images.sh) holds, at its root:
#   nats-server        CGO_ENABLED=0 go build github.com/nats-io/nats-server/v2
#   nats-server.conf   a copy of deploy/nats/nats-server.conf
#   data/              an empty directory, so that /data exists and belongs
#                      to the non-root user (scratch has no mkdir)
FROM scratch

ARG VERSION=dev
LABEL org.opencontainers.image.title="hangup-nats-server" \
      org.opencontainers.image.description="nats-server with JetStream for hangup" \
      org.opencontainers.image.version="${VERSION}"

COPY nats-server /usr/local/bin/nats-server
COPY nats-server.conf /etc/nats/nats-server.conf
COPY --chown=65532:65532 data /data

USER 65532:65532

# JetStream file store (store_dir /data/jetstream).
VOLUME ["/data"]

# 4222 clients, 8222 monitoring (/healthz, /varz, /jsz).
EXPOSE 4222 8222

# nats-server treats SIGTERM as a graceful stop ("lame duck" is SIGUSR2
# via --signal ldm).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/nats-server"]
CMD ["--config", "/etc/nats/nats-server.conf"]

# hangup worker: a static binary on an empty base.
#
# The build context is assembled by deploy/build-images.sh (or by the e2e
# test) and holds, at its root:
#   worker               CGO_ENABLED=0 go build ./cmd/worker
#   ca-certificates.crt  CA bundle, so the worker can verify the vendor's
#                        HTTPS certificate (scratch has none)
FROM scratch

ARG VERSION=dev
LABEL org.opencontainers.image.title="hangup-worker" \
      org.opencontainers.image.description="Disconnects meeting participants on requests from NATS JetStream" \
      org.opencontainers.image.source="https://github.com/hangup-dev/hangup" \
      org.opencontainers.image.version="${VERSION}"

COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY worker /usr/local/bin/worker

# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

# /metrics, /healthz, /readyz
EXPOSE 9090

# SIGTERM starts a graceful stop (bounded by --shutdown-timeout, 25s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/worker"]
CMD ["run"]

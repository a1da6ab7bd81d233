# meetingsim: the in-memory simulator of the vendor's meeting control API,
# for demos, compose and the e2e test. Never deploy it to production.
#
# The build context (deploy/build-images.sh) holds, at its root:
#   meetingsim   CGO_ENABLED=0 go build ./cmd/meetingsim
FROM scratch

ARG VERSION=dev
LABEL org.opencontainers.image.title="hangup-meetingsim" \
      org.opencontainers.image.description="Simulator of the Huawei Cloud Meeting control API (test use only)" \
      org.opencontainers.image.source="https://github.com/hangup-dev/hangup" \
      org.opencontainers.image.version="${VERSION}"

COPY meetingsim /usr/local/bin/meetingsim

USER 65532:65532

# Vendor API and the /_sim/ admin API.
EXPOSE 8090

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/meetingsim"]
# The default listens on 127.0.0.1 only, which is unreachable from outside
# the container.
CMD ["--listen", "0.0.0.0:8090"]

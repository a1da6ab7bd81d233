#!/usr/bin/env bash
# Builds the three hangup images FROM scratch, with static binaries built
# on this host (no base image is pulled, so it works without a registry):
#
#   hangup/worker:$TAG       cmd/worker
#   hangup/meetingsim:$TAG   cmd/meetingsim (vendor API simulator, test only)
#   hangup/nats-server:$TAG  nats-server at the version in go.mod, with
#                            deploy/nats/nats-server.conf
#
# Usage: deploy/build-images.sh            (from anywhere in the repo)
# Environment:
#   VERSION       stamped into the binaries (internal/buildinfo) and the
#                 image labels. Defaults to `git describe`, else "dev".
#   TAG           image tag. Defaults to "dev".
#   IMAGE_PREFIX  repository prefix. Defaults to "hangup".
#   GOARCH        target architecture. Defaults to the host's.
#   CA_BUNDLE     PEM bundle copied into the worker image so that it can
#                 verify the vendor's HTTPS certificate. Defaults to
#                 /etc/ssl/certs/ca-certificates.crt.
#   DOCKER        docker CLI to use. Defaults to "docker".
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
TAG="${TAG:-dev}"
IMAGE_PREFIX="${IMAGE_PREFIX:-hangup}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
DOCKER="${DOCKER:-docker}"

if [[ ! -s "$CA_BUNDLE" ]]; then
  echo "build-images: CA bundle $CA_BUNDLE is missing or empty; install ca-certificates or set CA_BUNDLE" >&2
  exit 1
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/hangup-images.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT

ldflags="-s -w -X github.com/hangup-dev/hangup/internal/buildinfo.version=${VERSION}"

# go_build OUT PKG: a static, reproducible binary.
go_build() {
  echo "build-images: go build $2" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$1" "$2"
}

# One build context per image, so that each docker build sends only what it
# copies.
mkdir -p "$ctx/worker" "$ctx/meetingsim" "$ctx/nats-server/data"

go_build "$ctx/worker/worker" ./cmd/worker
cp "$CA_BUNDLE" "$ctx/worker/ca-certificates.crt"
cp deploy/docker/worker.Dockerfile "$ctx/worker/Dockerfile"

go_build "$ctx/meetingsim/meetingsim" ./cmd/meetingsim
cp deploy/docker/meetingsim.Dockerfile "$ctx/meetingsim/Dockerfile"

# nats-server at the module version pinned in go.mod (the -X stamp does not
# apply to it and is ignored; it reports its own version).
go_build "$ctx/nats-server/nats-server" github.com/nats-io/nats-server/v2
cp deploy/nats/nats-server.conf "$ctx/nats-server/nats-server.conf"
cp deploy/docker/nats-server.Dockerfile "$ctx/nats-server/Dockerfile"

# Fail early on a config the server would refuse.
if ! out="$("$ctx/nats-server/nats-server" --config "$ctx/nats-server/nats-server.conf" -t 2>&1)"; then
  echo "build-images: deploy/nats/nats-server.conf is invalid: $out" >&2
  exit 1
fi

for image in worker meetingsim nats-server; do
  ref="${IMAGE_PREFIX}/${image}:${TAG}"
  echo "build-images: docker build $ref" >&2
  "$DOCKER" build --quiet --build-arg "VERSION=${VERSION}" -t "$ref" "$ctx/$image" >/dev/null
  echo "$ref"
done

// Package compose holds the test of deploy/compose.yaml: it builds the
// images with deploy/build-images.sh, brings the Compose file up with
// testcontainers-go's compose module (Compose as a library; no docker
// compose CLI plugin is needed), disconnects participants through
// `worker publish`, reads the outcome with `worker tail`, and tears the
// stack down.
//
// It is a package of its own because the compose module brings in Docker
// Compose, the Docker CLI and BuildKit: only this package pays their build
// cost. It owns test code only and exports nothing. It talks to the
// containers over NATS and HTTP, as an operator would.
//
// It needs a Docker engine and the docker CLI (for build-images.sh). It
// skips under -short and when no engine answers, unless
// HANGUP_REQUIRE_DOCKER=1 is set. Run it with
//
//	go test -count=1 -v ./internal/e2e/compose/
package compose

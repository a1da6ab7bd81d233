// Package e2e holds the end-to-end tests of hangup's container images: it
// builds the worker, the meeting API simulator and nats-server as static
// binaries, packs them into the FROM scratch images of deploy/docker, runs
// them on a private Docker network with testcontainers-go and checks the
// worker's invariant with internal/audit from the outside, the way an
// operator would see it.
//
// It owns test code only and exports nothing. It never touches the
// worker's internals: it talks to the containers over NATS and HTTP.
//
// The tests need a Docker engine. They skip when none answers, unless
// HANGUP_REQUIRE_DOCKER=1 is set, and they skip under -short. Run them with
//
//	go test -count=1 -v ./internal/e2e/
package e2e

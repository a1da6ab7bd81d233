# Every target calls plain go commands; `make test` is what CI runs.
GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test test-short lint fuzz bench demo images clean

all: lint test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

test:
	$(GO) test -race -count=1 -p 1 ./...

test-short:
	$(GO) test -short -count=1 ./...

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Ten minutes for each decoder of untrusted input.
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecodeRequest -fuzztime=10m ./schemas/
	$(GO) test -run='^$$' -fuzz=FuzzDecodeFastMatchesSlow -fuzztime=10m ./schemas/
	$(GO) test -run='^$$' -fuzz=FuzzResultMarshalJSON -fuzztime=5m ./schemas/
	$(GO) test -run='^$$' -fuzz=FuzzDecodeError -fuzztime=10m ./meetingclient/

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./schemas/ ./dispatcher/
	$(GO) test -run='^$$' -bench=. -benchtime=3x -count=3 ./internal/worker/

demo:
	$(GO) run ./cmd/worker demo

images:
	./deploy/build-images.sh

clean:
	rm -rf bin dist

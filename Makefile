# hyvve-sidecar — common tasks. `make test` is what CI runs.
GO ?= go
PKGS := ./...

.PHONY: test check vet fmt build run clean

## test: vet, gofmt check and every test under the race detector (needs redis-server on PATH).
test: check
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## check: go vet and gofmt (no test run).
check: vet fmt

vet:
	$(GO) vet $(PKGS)

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## build: the sidecar binary into bin/.
build:
	$(GO) build -o bin/sidecar ./cmd/sidecar

## run: a local redis-server and the sidecar (scripts/run-local.sh).
run:
	./scripts/run-local.sh

clean:
	rm -rf bin .hyvve-dev

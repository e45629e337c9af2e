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

## run: the sidecar on its embedded store (scripts/run-local.sh).
run:
	./scripts/run-local.sh

clean:
	rm -rf bin .hyvve-dev

## bench: the benchmark harness of issue 10 (real sidecar, Redis, no-op and go-redis baselines; a few
## minutes): JSON report on stdout, plot to docs/performance.png. Needs redis-server on PATH.
bench:
	@$(GO) run ./cmd/sidecar-bench -go "$(GO)" -plot docs/performance.png

## bench-smoke: every measurement of `make bench` for ~300 ms (CI): exits 0 with valid JSON; no timing assertions.
bench-smoke:
	@mkdir -p bin
	@$(GO) run ./cmd/sidecar-bench -go "$(GO)" -smoke -plot bin/bench-smoke.png

.PHONY: bench bench-smoke

## test-tracing: the end-to-end tracing test (SPEC §8, docs/tracing.md) against a real Jaeger
## all-in-one built from the tools/jaeger module into bin/jaeger (first build: several minutes).
test-tracing:
	@mkdir -p bin
	cd tools/jaeger && $(GO) build -o $(CURDIR)/bin/jaeger github.com/jaegertracing/jaeger/cmd/jaeger
	HYVVE_JAEGER_BIN=$(CURDIR)/bin/jaeger $(GO) test -race -count=1 -timeout 15m -tags tracing -v ./e2e/tracing/

.PHONY: test-tracing

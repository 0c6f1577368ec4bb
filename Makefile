# lapse: the two commands a new machine needs are `make demo` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# Packages whose tests are cheap enough for the race detector; the rest
# (DuckDB-linked, or long end-to-end runs) run without it.
NORACE  := /cmd/lapse|/pipeline|/sinks|/sim|/notebooks
PKGS    := $(shell $(GO) list ./... 2>/dev/null)
RACE    := $(shell $(GO) list ./... 2>/dev/null | grep -Ev '$(NORACE)')
PLAIN   := $(filter-out $(RACE),$(PKGS))

.PHONY: build test test-race test-plain lint demo bench bench-quick bench-snapshot clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/lapse ./cmd/lapse

test: lint test-race test-plain

test-race:
	$(GO) test -race -count=1 -timeout 20m $(RACE)

test-plain:
	$(GO) test -count=1 -timeout 30m $(PLAIN)

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

demo:
	$(MAKE) build
	@echo "make demo: simulated nights against the registry simulator (offline); data and score.json in demo/"
	bin/lapse demo --dir demo --nights 60 --emails 20000 --seed 1

# Every performance target side by side, each against a baseline measured
# in the same run (bench/main.go): one table, bench/results/DATE-COMMIT.json,
# exit 1 when a target is missed. bench takes about half an hour (the 10M
# night and a simulated year); bench-quick runs the 1M cases, fewer runs, in
# a few minutes. Fixtures and binaries live in $LAPSE_BENCH_DIR, else
# $TMPDIR/lapse-bench; BENCH_FLAGS passes more flags (go run ./bench -h).
bench:
	$(GO) run ./bench $(BENCH_FLAGS)

bench-quick:
	$(GO) run ./bench -quick $(BENCH_FLAGS)

bench-snapshot:
	$(MAKE) build
	$(GO) run ./bench/snapshot -lapse bin/lapse

clean:
	rm -rf bin

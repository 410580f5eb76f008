# nodevirt: `make demo` and `make test` work on a fresh Debian 12 machine (as root).
GO        ?= go
BIN       := bin/nodevirt
GOFLAGS   ?=
TESTFLAGS ?= -count=1
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all deps setup build demo test unit e2e vet fmt fuzz bench clean

all: build

# Build dependencies only (libvirt-dev, qemu-utils, ...): no daemon needed.
deps:
	@bash hack/setup.sh --packages-only

# Everything, including running virtlogd and libvirtd.
setup:
	@bash hack/setup.sh

build: deps
	$(GO) build $(GOFLAGS) -o $(BIN) ./cmd/nodevirt

demo: build
	$(BIN) demo --source examples

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

unit: deps
	$(GO) test $(TESTFLAGS) ./...

# e2e tests drive qemu:///system with real domains, real git and real files.
e2e: setup build
	$(GO) test $(TESTFLAGS) -tags e2e -timeout 15m ./...

test: setup build vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) test $(TESTFLAGS) -tags e2e -timeout 15m ./...
	$(MAKE) fuzz

# A bounded run of the decode → validate → render fuzz target (pushed input
# must never panic or blow up); FUZZTIME=10m for a longer hunt. Minimizing
# is capped so a new interesting input cannot stall the run.
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeValidateRender$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./internal/agent/

# The benchmarks behind docs/performance.md, COUNT times each (5 unless
# set), with benchstat summaries in bench-results/; BENCH=steady (or
# rss, validate, latency, apply, other) runs one group.
BENCH ?= all
COUNT ?= 5
bench: setup build
	GO=$(GO) COUNT=$(COUNT) bash hack/bench.sh $(BENCH)

clean:
	rm -rf bin

# conq — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
GOBIN_DIR := $(CURDIR)/.bin
# Every Go module of the repository (go.work lists them): the library, the
# command, the end-to-end tests and the comparative benchmarks.
ALL_PKGS := ./... ./cmd/conq/... ./tests/... ./bench/...

.PHONY: help build test test-go test-python lint bench bench-compare fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build the conq binary into ./bin/conq
	$(GO) build -o bin/conq ./cmd/conq

test: ## every test: Go (every module, with -race, private redis-server), Python SDK, bench module
	./scripts/test.sh

lint: ## gofmt check, go vet, staticcheck (every module)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(ALL_PKGS)
	@test -x $(GOBIN_DIR)/staticcheck || GOBIN=$(GOBIN_DIR) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN_DIR)/staticcheck $(ALL_PKGS)

bench: ## Go benchmarks of every module, the comparative harness in bench/ included
	$(GO) test -run '^$$' -bench . -benchmem $(ALL_PKGS)

fuzz: ## run each fuzz target for a while (FUZZTIME=30s)
	./scripts/fuzz.sh $${FUZZTIME:-30s}

clean: ## remove build outputs
	rm -rf bin .bin

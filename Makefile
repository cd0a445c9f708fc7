# Developer entry points for streamer. `make` alone lists the targets; every
# target has a `## description` on its rule line, which `make help` prints.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO ?= go
DEVDB := bash scripts/devdb.sh

.PHONY: help
help: ## Show this list of targets
	@awk -F ":.*## " '/^[a-zA-Z0-9_-]+:.*## / { printf "  %-11s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install missing system packages (PostgreSQL, Chromium, nginx, Prometheus) on Debian; needs root
	@bash scripts/ensure-deps.sh

.PHONY: build
build: ## Build the server into bin/streamer
	$(GO) build -o bin/streamer ./cmd/streamer

.PHONY: run
run: deps db-start ## Migrate the dev database and run the server on it (anonymous publishing on)
	DATABASE_URL="$$($(DEVDB) url)" $(GO) run ./cmd/streamer migrate
	DATABASE_URL="$$($(DEVDB) url)" STREAMER_ALLOW_ANONYMOUS_PUBLISH=true STREAMER_LOG_FORMAT=console \
		$(GO) run ./cmd/streamer serve

.PHONY: db-start
db-start: deps ## Start the dev database (in .data/, or where start says; unix socket only), creating it on first use
	@$(DEVDB) start

.PHONY: db-stop
db-stop: ## Stop the dev database; its data stays
	@$(DEVDB) stop

.PHONY: psql
psql: db-start ## Open psql on the dev database
	psql "$$($(DEVDB) url)"

# The delivery tests again with the database in ticks ordering mode
# (STREAMER_TEST_ORDERING; every test database is in trigger mode otherwise).
TICKS_PKGS := ./internal/dispatch/ ./internal/server/ ./internal/retention/ ./internal/sequencer/ ./internal/pgtest/ ./migrations/

.PHONY: test
test: deps ## Vet, then run every test with the race detector, the delivery tests in both ordering modes
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	STREAMER_TEST_ORDERING=ticks $(GO) test -race -count=1 -timeout 20m $(TICKS_PKGS)
	STREAMER_TEST_ORDERING=ticks $(GO) test -race -count=1 -timeout 20m -run 'TestInstances|TestGap$$|TestFault$$' ./internal/e2e/

.PHONY: bench
bench: deps ## Run every benchmark once, so none rots (use -benchtime for numbers)
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

.PHONY: bench-load
bench-load: deps ## Load-test streamer against a plain net/http SSE server: every scenario (the fan-out also authenticated), the capacity search, nginx in front of two instances (~15 min; docs/benchmarks.md)
	@mkdir -p bin
	$(GO) run ./cmd/streamer-bench -out bin/bench-load.json

.PHONY: fmt
fmt: ## Format all Go code
	$(GO) fmt ./...

.PHONY: clean
clean: ## Remove build output (bin/); the dev database stays
	rm -rf bin/

.PHONY: clean-data
clean-data: ## Stop the dev database and delete it
	@$(DEVDB) clean

.PHONY: soak
soak: deps ## Churn soak: 2,000 clients connect, read, leave (FIN, RST, stalled) and resume for SOAK_DURATION (10m); see docs/reliability.md
	STREAMER_SOAK_DURATION=$(or $(SOAK_DURATION),10m) STREAMER_SOAK_CLIENTS=$(or $(SOAK_CLIENTS),2000) \
		$(GO) test -count=1 -timeout $(or $(SOAK_TIMEOUT),3h) -v -run '^TestSoak$$' ./internal/e2e/

.PHONY: fuzz
fuzz: ## Run each fuzz target for 15s (FUZZTIME=60s, or 10000x: a count, immune to go1.26's deadline flake); seeds also run in make test
	$(GO) test -run '^$$' -fuzz '^FuzzEventStream$$' -fuzztime $(or $(FUZZTIME),15s) ./internal/sse/
	$(GO) test -run '^$$' -fuzz '^FuzzAppendEvent$$' -fuzztime $(or $(FUZZTIME),15s) ./internal/sse/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(or $(FUZZTIME),15s) ./internal/cursor/
	$(GO) test -run '^$$' -fuzz '^FuzzPublishBody$$' -fuzztime $(or $(FUZZTIME),15s) ./internal/server/
	$(GO) test -run '^$$' -fuzz '^FuzzSubscriberToken$$' -fuzztime $(or $(FUZZTIME),15s) ./internal/auth/
	$(GO) test -run '^$$' -fuzz '^FuzzPatternMatch$$' -fuzztime $(or $(FUZZTIME),15s) ./internal/auth/
	$(GO) test -run '^$$' -fuzz '^FuzzTickPayload$$' -fuzztime $(or $(FUZZTIME),15s) ./internal/dispatch/

.PHONY: chaos
chaos: deps ## Long fault tests under load (STREAMER_CHAOS=1) and 60s fuzz runs; see docs/reliability.md
	STREAMER_CHAOS=1 $(GO) test -race -count=1 -timeout 40m -v -run 'Fault' ./internal/faultproxy/ ./internal/e2e/
	$(MAKE) fuzz FUZZTIME=60s

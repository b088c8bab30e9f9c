# clickgate — see README.md. `make run` and `make test` are the two set-up commands.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO ?= go

.PHONY: run build test race bench loadtest fmt vet redis-server python3 chromium tools

run: ## run the service on the embedded store under ./data
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/clickgate serve

BIN ?= bin
build: ## static binary in $(BIN)/ (bin/)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/clickgate ./cmd/clickgate

test: tools redis-server python3 chromium ## the whole suite, with the race detector, showing progress (the race detector needs gcc, the README's tests curl and openssl, Redis tests redis-server, the ledger checker's test python3, the dashboard's browser test chromium)
	bash .ci/test

race: test

bench: ## Go micro-benchmarks
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1,2,4 ./...

# Every design side by side: each server (with its redis-server) pinned to
# CPU 0, the load generator to CPU 1. Rewrites BENCHMARKS.md.
loadtest: build redis-server ## the load test and the performance table
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/clickbench ./cmd/clickbench
	taskset -c 1 bin/clickbench loadtest --clickgate bin/clickgate --server-cpu 0 --out BENCHMARKS.md

fmt:
	gofmt -w .

vet:
	$(GO) vet ./...

# The Redis tests start their own redis-server on a free loopback port; they
# fail (never skip) when it is missing, so install it when we can.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "redis-server is missing; installing it with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null && \
		{ service redis-server stop >/dev/null 2>&1 || true; }; \
	}
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is required for the tests (apt-get install redis-server)"; exit 1; }

# The race detector needs cgo, so a C compiler; the README's commands, run
# by its tests, use curl and openssl. Each is installed when missing.
tools:
	@for t in gcc curl openssl; do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		echo "missing:$$missing; installing with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@for t in gcc curl openssl; do command -v $$t >/dev/null 2>&1 || { echo "$$t is required for the tests (apt-get install $$t)"; exit 1; }; done

# The ledger's checker for finance (counter/ledger/testdata/check_ledger.py)
# is tested on the ledgers the Go tests write; that test fails without it.
python3:
	@command -v python3 >/dev/null 2>&1 || { \
		echo "python3 is missing; installing it with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null; \
	}
	@command -v python3 >/dev/null 2>&1 || { echo "python3 is required for the tests (apt-get install python3)"; exit 1; }

# The dashboard's browser tests drive Debian's headless Chromium; they fail,
# never skip, without it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "chromium is missing; installing it with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	}
	@command -v chromium >/dev/null 2>&1 || { echo "chromium is required for the dashboard's browser tests (apt-get install chromium)"; exit 1; }

# socks6 — build, test, fuzz, benchmark.
GO       ?= go
FUZZTIME ?= 60s

.PHONY: run build test test-short vet lint fuzz bench bench-quick clean

## run: serve SOCKS5 on 127.0.0.1:1080 with the embedded defaults
run:
	$(GO) run ./cmd/socks6d

## build: build the binaries into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## test: everything CI runs — formatting, vet, the whole test suite with the race detector
test: lint
	$(GO) test -race -count=1 -timeout 15m ./...

## test-short: the quick subset (no netns, no curl, no 100 MiB transfers)
test-short:
	$(GO) test -short -count=1 ./...

vet:
	$(GO) vet ./...

## lint: gofmt and go vet (import rules and doc comments are tests in internal/)
lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin bench/out

# --- bench (self-contained; see bench/README.md) ------------------------------
# Needs root: installs dante-server and microsocks if missing and creates the
# system user sbuser. Env: REPS (3), SCENARIOS (all), IDLE_CONNS (5000),
# MAX_TIME, BENCH_ARGS. Results: stdout and bench/out/.

## bench: socks6d vs Dante, microsocks and things-go on loopback, and socksify vs proxychains4, medians of REPS (~15 min)
bench:
	@bash bench/run.sh

## bench-quick: one short rep of every scenario, a smoke test (~2 min)
bench-quick:
	@QUICK=1 REPS=$${REPS:-1} IDLE_CONNS=$${IDLE_CONNS:-1000} bash bench/run.sh

# --- draft (see rfc-draft/README.md) -------------------------------------------
.PHONY: draft

## draft: render the Internet-Draft to XML and HTML with mmark and check the XML
draft:
	$(MAKE) -C rfc-draft

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
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin bench/out

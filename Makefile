# heloguard — build and test.
#
#   make            build ./heloguard
#   make test       install the test dependencies (Debian: Postfix, swaks,
#                   miltertest, an unpacked Sendmail; needs root), verify them
#                   and run every test, end to end included
#   make check      the same tests without installing anything (the dependencies
#                   are still verified, so a missing one is a setup error)
#   make bench      the benchmarks reported in BENCHMARKS.md

GO ?= go

.PHONY: all build test check deps verify-deps lint bench fuzz

all: build

build:
	$(GO) build -o heloguard ./cmd/heloguard

deps:
	./deploy/install-test-deps.sh

verify-deps:
	./deploy/install-test-deps.sh --verify

test: deps check

# The scenario files kept in the repository; when ../shared/scenarios is checked
# out beside it, check runs heloguard test over its files as well, so a scenario
# added there is checked before it is copied in.
SCENARIOS = $(wildcard policy/scenario/testdata/*.yaml)

check: verify-deps lint
	HELOGUARD_E2E=1 $(GO) test -race -count=1 -timeout 20m ./...
	$(GO) run ./cmd/heloguard test $(SCENARIOS)
	@if [ -d ../shared/scenarios ]; then \
		echo '$(GO) run ./cmd/heloguard test ../shared/scenarios/*.yaml'; \
		$(GO) run ./cmd/heloguard test ../shared/scenarios/*.yaml; \
	else \
		echo 'no ../shared/scenarios beside the repository: in-repo scenarios only'; \
	fi

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./policy/ ./dnscache/ ./milter/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseHelo -fuzztime 30s ./policy/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzMilterPackets$$' -fuzztime 30s ./milter/
	$(GO) test -run '^$$' -fuzz '^FuzzClientIP$$' -fuzztime 30s ./milter/

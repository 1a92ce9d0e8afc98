# heloguard — build and test.
#
#   make            build ./heloguard
#   make test       install the test dependencies (Debian: Postfix, swaks,
#                   miltertest, an unpacked Sendmail; needs root), verify them
#                   and run every test, end to end included
#   make check      the same tests without installing anything (the dependencies
#                   are still verified, so a missing one is a setup error)
#   make bench      build ./heloguard and load it as Postfix does, beside two
#                   do-nothing milters (heloguard bench --headers 4,20): one
#                   summary table, about a minute and a half (BENCHMARKS.md)
#   make bench-go   the go test benchmarks reported in BENCHMARKS.md
#   make soak       the soak and lifecycle test (deploy/soak; 60 s by default)
#   make deb        the Debian package heloguard_<version>_<arch>.deb
#                   (deploy/deb/build.sh; VERSION=1.2.3 sets the version)

GO ?= go

.PHONY: all build deb test check deps verify-deps lint bench bench-go fuzz soak

all: build

# `heloguard version` reads the commit from the build info; the go command
# stamps it in a clone but not in a git worktree (nor with GOFLAGS=-buildvcs=false),
# so it is passed with -X as well. VERSION=1.2.3 sets the version it prints.
GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null)
GIT_MODIFIED := $(shell if [ -n "$$(git status --porcelain 2>/dev/null)" ]; then echo true; else echo false; fi)
LDFLAGS := -X main.commit=$(GIT_COMMIT) -X main.commitModified=$(GIT_MODIFIED)$(if $(VERSION), -X main.version=$(VERSION))

build:
	$(GO) build -buildvcs=auto -ldflags '$(LDFLAGS)' -o heloguard ./cmd/heloguard

# dpkg-deb packs a tree staged by the script; see deploy/deb/build.sh.
deb:
	VERSION='$(VERSION)' GO='$(GO)' sh deploy/deb/build.sh

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

# The soak test: SOAK_DURATION (60s), SOAK_CONCURRENCY (200), SOAK_RELOADS (50).
soak:
	HELOGUARD_SOAK=1 $(GO) test -count=1 -v -run TestSoak -timeout 30m ./deploy/soak/

# Progress goes to stderr, the table to stdout.
bench: build
	./heloguard bench --headers 4,20

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./policy/ ./dnscache/ ./milter/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseHelo -fuzztime 30s ./policy/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./config/
	$(GO) test -run '^$$' -fuzz FuzzAuthResults -fuzztime 30s ./milter/
	$(GO) test -run '^$$' -fuzz FuzzAuthservID -fuzztime 30s ./milter/
	$(GO) test -run '^$$' -fuzz FuzzDNSReply -fuzztime 30s ./dnscache/
	$(GO) test -run '^$$' -fuzz 'FuzzParse$$' -fuzztime 30s ./policy/record/
	$(GO) test -run '^$$' -fuzz FuzzRoundTrip -fuzztime 30s ./policy/record/
	$(GO) test -run '^$$' -fuzz '^FuzzMilterPackets$$' -fuzztime 30s ./milter/
	$(GO) test -run '^$$' -fuzz '^FuzzClientIP$$' -fuzztime 30s ./milter/

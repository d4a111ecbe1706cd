# lxcri: containerd runtime v2 shim with pluggable backends.
#
#   make setup    install host packages and build containerd/ctr/crictl/nerdctl (cached)
#   make build    build bin/containerd-shim-lxcri-v2 and, when present, bin/lxcri-start
#   make test     setup + build + go vet + unit tests + integration tests (root)
#   make demo     run contrib/scripts/demo.sh against a private containerd
#   make bench    benchmarks against containerd's runc shim (integration/bench)
#   make soak     500 container lifecycles per backend and shim mode, counting leaks (integration/soak)
#   make cover    statement coverage per package: unit, integration and combined
#   make install  install the shim and helper to $(PREFIX)/bin
#   make clean    remove bin/

export PATH := /usr/local/go/bin:$(PATH)

GO        ?= go
ifeq ($(origin CC),default)
CC        := gcc
endif
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    := $(CURDIR)/bin
SHIM      := containerd-shim-lxcri-v2
HELPER    := lxcri-start
HELPER_SRC := backend/lxc/helper/lxcri-start.c
GOFLAGS_BUILD ?= -trimpath
TEST_TIMEOUT  ?= 60m
# extra flags for `go test` of the integration tests, e.g. TESTFLAGS='-run TestLifecycle -v'
TESTFLAGS ?=

.PHONY: all setup build shim helper vet unit integration test install demo bench soak \
	cover cover-build cover-unit cover-integration cover-report clean

all: build

setup:
	contrib/scripts/setup-host.sh

build: shim helper

shim:
	@mkdir -p $(BINDIR)
	$(GO) build $(GOFLAGS_BUILD) -o $(BINDIR)/$(SHIM) ./cmd/$(SHIM)

# The lxc backend's start helper (C against liblxc). backend/lxc may bring its own
# Makefile with a `helper` target; otherwise the single source file is compiled here.
helper:
	@if [ -f backend/lxc/Makefile ]; then \
		$(MAKE) -C backend/lxc helper BINDIR=$(BINDIR); \
	elif [ -f $(HELPER_SRC) ]; then \
		mkdir -p $(BINDIR) && \
		echo "$(CC) -O2 -Wall -o $(BINDIR)/$(HELPER) $(HELPER_SRC) -llxc" && \
		$(CC) -O2 -Wall -o $(BINDIR)/$(HELPER) $(HELPER_SRC) -llxc; \
	else \
		echo "helper: $(HELPER_SRC) not present yet, skipping $(HELPER)"; \
	fi

vet:
	$(GO) vet ./...

# Unit tests: every package but the integration tests.
unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v '/integration/')

# Integration tests start their own containerd (see integration/harness) and share
# /run/containerd, so their packages run one at a time (-p 1).
integration:
	LXCRI_SHIM_DIR=$(BINDIR) $(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) $(TESTFLAGS) ./integration/...

test: setup build vet unit integration

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BINDIR)/$(SHIM) $(DESTDIR)$(PREFIX)/bin/$(SHIM)
	@if [ -f $(BINDIR)/$(HELPER) ]; then \
		echo "install -m 0755 $(BINDIR)/$(HELPER) $(DESTDIR)$(PREFIX)/bin/$(HELPER)"; \
		install -m 0755 $(BINDIR)/$(HELPER) $(DESTDIR)$(PREFIX)/bin/$(HELPER); \
	fi
	@if [ -f contrib/config.toml ] && [ ! -e $(DESTDIR)/etc/lxcri/config.toml ]; then \
		echo "install -m 0644 contrib/config.toml $(DESTDIR)/etc/lxcri/config.toml"; \
		install -d $(DESTDIR)/etc/lxcri && \
		install -m 0644 contrib/config.toml $(DESTDIR)/etc/lxcri/config.toml; \
	fi

demo: build
	contrib/scripts/demo.sh

# Benchmarks (integration/bench/cmd/lxcri-bench): the runc shim against every lxcri backend
# the shim has built in, on a private containerd; prints the table and writes $(BENCHOUT).
# More runs or fewer backends: make bench BENCHFLAGS='-n 50 -backends crun-crun'
BENCHFLAGS ?= -n 20 -churn 50 -inflight 8
BENCHOUT   ?= docs/BENCHMARKS.md

bench: build
	LXCRI_SHIM_DIR=$(BINDIR) $(GO) run ./integration/bench/cmd/lxcri-bench $(BENCHFLAGS) -out $(BENCHOUT)

# Soak (integration/soak): create, start, exec, kill, wait, delete, SOAKFLAGS cycles per
# backend in grouped and single shims, then a table of what was left behind and the shims'
# goroutines, fds and RSS. `make test` runs it with 50 cycles. One backend or mode:
#   make soak SOAKFLAGS='-soak.cycles 500 -soak.backends lxc -soak.modes grouped'
SOAKFLAGS ?= -soak.cycles 500 -soak.inflight 8

soak: build
	LXCRI_SHIM_DIR=$(BINDIR) $(GO) test -count=1 -v -timeout $(TEST_TIMEOUT) -run 'TestSoak$$' ./integration/soak -args $(SOAKFLAGS)

# Coverage: the shim is built with -cover into $(COVERDIR)/bin (the helper beside it), unit
# tests and the integration tests write coverage data (the shims containerd starts inherit
# GOCOVERDIR through containerd's environment), and cover-report prints per package the
# statement coverage of each and of both merged ($(COVERDIR)/combined.out is the merged
# text profile). The integration part may be run in pieces, which add up:
#   make cover-build cover-unit; make cover-integration ITESTPKGS=./integration/shim TESTFLAGS='-run TestLifecycle'; make cover-report
COVERDIR  ?= $(CURDIR)/cover
ITESTPKGS ?= ./integration/...
COVERPKG   = $(shell $(GO) list ./... | grep -v /integration/ | paste -sd, -)
COVERFLAGS = -covermode=atomic -coverpkg=$(COVERPKG)

cover: cover-build cover-unit cover-integration cover-report

cover-build:
	rm -rf $(COVERDIR)
	mkdir -p $(COVERDIR)/bin $(COVERDIR)/unit $(COVERDIR)/integration
	$(GO) build $(GOFLAGS_BUILD) $(COVERFLAGS) -o $(COVERDIR)/bin/$(SHIM) ./cmd/$(SHIM)
	$(MAKE) helper BINDIR=$(COVERDIR)/bin

cover-unit:
	$(GO) test -count=1 $(COVERFLAGS) $$($(GO) list ./... | grep -v '/integration/') -args -test.gocoverdir=$(COVERDIR)/unit

cover-integration:
	GOCOVERDIR=$(COVERDIR)/integration LXCRI_SHIM_DIR=$(COVERDIR)/bin $(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) $(TESTFLAGS) $(ITESTPKGS)

cover-report:
	GO=$(GO) contrib/scripts/cover-report.sh $(COVERDIR)

clean:
	rm -rf $(BINDIR) $(COVERDIR)

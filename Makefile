# lxcri: containerd runtime v2 shim with pluggable backends.
#
#   make setup    install host packages and build containerd/ctr/crictl/nerdctl (cached)
#   make build    build bin/containerd-shim-lxcri-v2 and, when present, bin/lxcri-start
#   make test     setup + build + go vet + unit tests + integration tests (root)
#   make demo     run contrib/scripts/demo.sh against a private containerd
#   make bench    benchmarks against containerd's runc shim (integration/bench)
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

.PHONY: all setup build shim helper vet unit integration test install demo bench clean

all: build

setup:
	contrib/scripts/setup-host.sh

build: shim helper

shim:
	@mkdir -p $(BINDIR)
	$(GO) build $(GOFLAGS_BUILD) -ldflags "-X github.com/lxcri/lxcri/backend/lxc.InstallBinDir=$(PREFIX)/bin" -o $(BINDIR)/$(SHIM) ./cmd/$(SHIM)

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

clean:
	rm -rf $(BINDIR)

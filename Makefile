# lxcri: containerd runtime v2 shim with pluggable backends.
#
#   make setup    install host packages and build containerd/ctr/crictl/nerdctl (cached)
#   make build    build bin/containerd-shim-lxcri-v2, bin/lxcri (the operator's tool), bin/lxcri-pause and bin/lxcri-start
#   make test     setup + build + go vet + unit tests + integration tests (root)
#   make demo     setup + build, then contrib/scripts/demo.sh: run, exec, logs, stats,
#                 checkpoint/restore on a throw-away ZFS pool, against a private containerd
#   make bench    benchmarks against containerd's runc shim (integration/bench)
#   make conformance  containerd's client suite and critest on runc vs lxcri (docs/CONFORMANCE.md)
#   make soak     500 container lifecycles per backend and shim mode, counting leaks (integration/soak)
#   make cover    statement coverage per package: unit, integration and combined
#   make install  install the shim, the helper and lxcri to $(PREFIX)/bin, and an example
#                 /etc/lxcri/config.toml when there is none
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
TOOL      := lxcri
# lxcri version shows this; e.g. make VERSION=v0.3.0
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null)
HELPER    := lxcri-start
HELPER_SRC := backend/lxc/helper/lxcri-start.c
PAUSE     := lxcri-pause
VMLAUNCHER := lxcri-vm-launcher
GOFLAGS_BUILD ?= -trimpath
TEST_TIMEOUT  ?= 60m
# extra flags for `go test` of the integration tests, e.g. TESTFLAGS='-run TestLifecycle -v'
TESTFLAGS ?=

.PHONY: all setup build shim helper pause vmlauncher tool vet unit integration test install demo bench clean \
	conformance conformance-setup conformance-focus-setup conformance-run conformance-report \
	soak cover cover-build cover-unit cover-integration cover-report

all: build

setup:
	contrib/scripts/setup-host.sh

build: shim tool helper pause vmlauncher

# The shim is a static binary without cgo: containerd execs it twice per container, and a
# static binary spares each exec the dynamic loader and the C library (a smaller resident
# set per container). Whatever needs liblxc runs in lxcri-start; cmd/containerd-shim-lxcri-v2's
# tests keep cgo out of the shim's import graph.
shim:
	@mkdir -p $(BINDIR)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags "-X github.com/lxcri/lxcri/backend/lxc.InstallBinDir=$(PREFIX)/bin" -o $(BINDIR)/$(SHIM) ./cmd/$(SHIM)

# The init of proxmox-lxc CTs: static, as it runs inside a CT's root whatever its libc.
pause:
	@mkdir -p $(BINDIR)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags '-s -w' -o $(BINDIR)/$(PAUSE) ./cmd/$(PAUSE)

# What the proxmox-vm backend places in each VM's guest to run the task's processes:
# static, as it runs in a guest OS lxcri knows nothing of.
vmlauncher:
	@mkdir -p $(BINDIR)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags '-s -w' -o $(BINDIR)/$(VMLAUNCHER) ./cmd/$(VMLAUNCHER)

tool:
	@mkdir -p $(BINDIR)
	$(GO) build $(GOFLAGS_BUILD) -ldflags "-X main.version=$(VERSION)" -o $(BINDIR)/$(TOOL) ./cmd/$(TOOL)

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

# The integration tests include a focus set of containerd's client suite on lxcri's lxc
# backend (integration/conformance), which needs the suite and the registry.
test: setup conformance-focus-setup build vet unit integration

conformance-focus-setup:
	contrib/scripts/setup-conformance.sh client registry

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BINDIR)/$(SHIM) $(DESTDIR)$(PREFIX)/bin/$(SHIM)
	install -m 0755 $(BINDIR)/$(PAUSE) $(DESTDIR)$(PREFIX)/bin/$(PAUSE)
	install -m 0755 $(BINDIR)/$(VMLAUNCHER) $(DESTDIR)$(PREFIX)/bin/$(VMLAUNCHER)
	install -m 0755 $(BINDIR)/$(TOOL) $(DESTDIR)$(PREFIX)/bin/$(TOOL)
	@if [ -f $(BINDIR)/$(HELPER) ]; then \
		echo "install -m 0755 $(BINDIR)/$(HELPER) $(DESTDIR)$(PREFIX)/bin/$(HELPER)"; \
		install -m 0755 $(BINDIR)/$(HELPER) $(DESTDIR)$(PREFIX)/bin/$(HELPER); \
	fi
	@if [ -f contrib/config.toml ] && [ ! -e $(DESTDIR)/etc/lxcri/config.toml ]; then \
		echo "install -m 0644 contrib/config.toml $(DESTDIR)/etc/lxcri/config.toml"; \
		install -d $(DESTDIR)/etc/lxcri && \
		install -m 0644 contrib/config.toml $(DESTDIR)/etc/lxcri/config.toml; \
	fi

# The demo does the host set-up (cached, like `make test`) and the build itself, so it is a
# fresh machine's first command.
demo:
	$(MAKE) setup
	$(MAKE) build
	LXCRI_SHIM_DIR=$(BINDIR) contrib/scripts/demo.sh

# Benchmarks (integration/bench/cmd/lxcri-bench): the runc shim against every lxcri backend
# the shim has built in, on a private containerd; prints the table and writes $(BENCHOUT).
# More runs or fewer backends: make bench BENCHFLAGS='-n 50 -backends crun-crun'
BENCHFLAGS ?= -n 20 -churn 50 -inflight 8
BENCHOUT   ?= docs/BENCHMARKS.md

bench: build
	LXCRI_SHIM_DIR=$(BINDIR) $(GO) run ./integration/bench/cmd/lxcri-bench $(BENCHFLAGS) -out $(BENCHOUT)

# Conformance: containerd v2.4.2's integration/client suite and cri-tools v1.37.0's critest,
# each against containerd's runc shim (the baseline) and every lxcri runtime, one suite and
# runtime per run (a private containerd, a local registry with the suites' images, a zfs-fuse
# pool for lxcri's checkpoints). The suites are built once into the tools folder by
# conformance-setup. Each run stores its results in $(CONFORMANCE_OUT); the report compares
# them with the runc shim's and writes docs/CONFORMANCE.md, with the reasons of known
# differences from $(CONFORMANCE_REASONS).
#   make conformance CONFORMANCE_RUNTIMES=lxc CONFORMANCE_SUITES=critest
#   make conformance CONFORMANCE_WRAP='flock LOCKFILE'   (each run under a lock)
CONFORMANCE_SUITES   ?= containerd-client critest
CONFORMANCE_RUNTIMES ?= runc-shim lxc crun-runc
CONFORMANCE_OUT      ?= $(BINDIR)/conformance
CONFORMANCE_REASONS  ?= docs/CONFORMANCE.reasons.tsv
CONFORMANCE_FLAGS    ?=
CONFORMANCE_WRAP     ?=
CONFORMANCE          := $(BINDIR)/lxcri-conformance

conformance: setup conformance-setup build conformance-run conformance-report

conformance-setup:
	contrib/scripts/setup-conformance.sh

$(CONFORMANCE): FORCE
	@mkdir -p $(BINDIR)
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./integration/conformance/cmd/lxcri-conformance

# A run whose suite fails tests still succeeds (its results say which); a run that could not
# produce results fails the target once every other run is done.
conformance-run: $(CONFORMANCE)
	@failed=""; \
	for s in $(CONFORMANCE_SUITES); do for r in $(CONFORMANCE_RUNTIMES); do \
		echo "conformance: $$s on $$r"; \
		LXCRI_SHIM_DIR=$(BINDIR) $(CONFORMANCE_WRAP) $(CONFORMANCE) run -suite $$s -runtime $$r \
			-out $(CONFORMANCE_OUT) $(CONFORMANCE_FLAGS) || failed="$$failed $$s/$$r"; \
	done; done; \
	if [ -n "$$failed" ]; then echo "conformance: runs without results:$$failed" >&2; exit 1; fi

conformance-report: $(CONFORMANCE)
	$(CONFORMANCE) report -in $(CONFORMANCE_OUT) -out docs/CONFORMANCE.md -reasons $(CONFORMANCE_REASONS)

FORCE:

clean:
	rm -rf $(BINDIR) $(COVERDIR)

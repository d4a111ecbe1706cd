//go:build linux

// Package conformance runs the public suites containerd and Kubernetes hold runtimes to,
// containerd's integration/client tests and cri-tools' critest, against containerd's runc
// shim and against lxcri's backends, and turns their results into a comparison table.
//
// One Run is one suite against one runtime: it starts a local OCI registry serving the
// suites' images (built offline from busybox, see images.go), a private containerd through
// integration/harness where the suite needs one (critest; containerd's client suite starts
// its own daemon), a zfs-fuse pool for lxcri's checkpoints, runs the suite and stores its
// results as JSON beside the suite's raw output (go test -json, ginkgo JUnit). Report reads
// every stored Run and writes the Markdown table.
//
// The suites are built by contrib/scripts/setup-conformance.sh into the tools folder.
package conformance

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Suite names.
const (
	// SuiteClient is containerd's integration/client test package.
	SuiteClient = "containerd-client"
	// SuiteCRI is cri-tools' critest.
	SuiteCRI = "critest"
)

// Suites lists the suite names in report order.
var Suites = []string{SuiteClient, SuiteCRI}

// Runtime is one runtime configuration under test.
type Runtime struct {
	// Key names the runtime on the command line and in result files.
	Key string
	// Name is the label in the report.
	Name string
	// Type is the containerd runtime type (TEST_RUNTIME, runtime_type).
	Type string
	// LXCRI is lxcri's configuration (TOML, without state_dir and [zfs]), "" for a runtime
	// that is not lxcri.
	LXCRI string
	// Baseline marks the runtime every other one is compared with.
	Baseline bool
}

// Runtime keys.
const (
	RuncShim = "runc-shim"
	LXC      = "lxc"
	CrunRunc = "crun-runc"
)

// Runtimes returns containerd's runc shim (the baseline), lxcri on its lxc backend, and
// lxcri's crun backend driving runc.
func Runtimes() []Runtime {
	return []Runtime{
		{Key: RuncShim, Name: "runc shim (io.containerd.runc.v2)", Type: "io.containerd.runc.v2", Baseline: true},
		{Key: LXC, Name: "lxcri, lxc backend", Type: "io.containerd.lxcri.v2", LXCRI: "backend = \"lxc\"\n"},
		{Key: CrunRunc, Name: "lxcri, crun backend driving runc", Type: "io.containerd.lxcri.v2", LXCRI: "backend = \"crun\"\n[crun]\nbinary = \"runc\"\n"},
	}
}

// RuntimeByKey returns the runtime named key.
func RuntimeByKey(key string) (Runtime, error) {
	var keys []string
	for _, r := range Runtimes() {
		if r.Key == key {
			return r, nil
		}
		keys = append(keys, r.Key)
	}
	sort.Strings(keys)
	return Runtime{}, fmt.Errorf("unknown runtime %q (known: %s)", key, strings.Join(keys, ", "))
}

// CheckSuite returns an error unless name is a known suite.
func CheckSuite(name string) error {
	for _, s := range Suites {
		if s == name {
			return nil
		}
	}
	return fmt.Errorf("unknown suite %q (known: %s)", name, strings.Join(Suites, ", "))
}

// Skip is a test the harness runs on no runtime, and why.
type Skip struct {
	Suite, Test, Reason string
}

// Skips are the tests left out of every run: each hangs on the baseline itself on a host
// like the one `make conformance` was written on, and a hung test takes the whole suite
// binary (and every test after it) down with its timeout.
var Skips = []Skip{
	{SuiteClient, "TestBindLowPortNonOpt", "hangs on the runc shim too: its container (busybox `nc -l -p 80` as uid 1000) does not exit on SIGTERM, and the test waits for the exit without a deadline"},
}

// skipPattern is the regular expression of the Skips of suite joined with extra ("" if none).
func skipPattern(suite, extra string) string {
	var alts []string
	for _, s := range Skips {
		if s.Suite == suite {
			alts = append(alts, regexp.QuoteMeta(s.Test))
		}
	}
	p := ""
	if len(alts) > 0 {
		p = "^(" + strings.Join(alts, "|") + ")$"
	}
	switch {
	case extra == "":
		return p
	case p == "":
		return extra
	}
	return p + "|" + extra
}

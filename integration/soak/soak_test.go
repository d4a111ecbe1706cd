//go:build linux

package soak_test

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/soak"
	"github.com/lxcri/lxcri/integration/zfstest"
)

// `make soak` sets these for the long run; `make test` runs the defaults.
var (
	cycles   = flag.Int("soak.cycles", 50, "lifecycles per backend and mode")
	inflight = flag.Int("soak.inflight", 8, "lifecycles in flight at once")
	backends = flag.String("soak.backends", "lxc,crun-runc", "comma-separated backends to soak (lxc, crun-runc)")
	modes    = flag.String("soak.modes", "grouped,single", "comma-separated shim modes (grouped, single)")
	withZFS  = flag.Bool("soak.zfs", false, "put the containers' root filesystems on a throw-away ZFS pool")
)

// TestSoak runs -soak.cycles lifecycles of every backend in every mode and fails on any
// failed cycle and on anything left behind (see package soak for what is counted). Each
// backend/mode pair is a subtest with a containerd of its own, so one pair can be run
// alone: -run 'TestSoak/lxc/grouped'.
func TestSoak(t *testing.T) {
	var all []*soak.Result
	t.Cleanup(func() {
		var b bytes.Buffer
		soak.WriteTable(&b, all)
		t.Logf("soak figures (%d cycles per run, %d in flight):\n%s", *cycles, *inflight, b.String())
	})
	want := map[string]bool{}
	for _, b := range strings.Split(*backends, ",") {
		want[strings.TrimSpace(b)] = true
	}
	known := map[string]bool{}
	for _, b := range soak.Backends() {
		known[b.Name] = true
		if !want[b.Name] {
			continue
		}
		b := b
		t.Run(b.Name, func(t *testing.T) {
			for _, mode := range strings.Split(*modes, ",") {
				mode := strings.TrimSpace(mode)
				t.Run(mode, func(t *testing.T) {
					o := soak.Options{Backend: b, Mode: mode, Cycles: *cycles, InFlight: *inflight, Logf: t.Logf}
					if *withZFS {
						pool, _ := zfstest.Pool(t)
						o.Pool = pool
						o.Datasets = func() []string { return zfstest.Datasets(t, pool) }
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
					defer cancel()
					res, err := soak.Run(ctx, t, o)
					if res != nil {
						all = append(all, res)
					}
					if err != nil {
						t.Fatal(err)
					}
					if err := res.Err(); err != nil {
						t.Errorf("%v\n%s", err, res.Describe())
						for _, n := range res.Notes {
							t.Log(n)
						}
					}
					if res.Cycles != *cycles {
						t.Errorf("%d of %d cycles completed", res.Cycles, *cycles)
					}
				})
			}
		})
	}
	for b := range want {
		if !known[b] {
			t.Errorf("unknown backend %q in -soak.backends", b)
		}
	}
}

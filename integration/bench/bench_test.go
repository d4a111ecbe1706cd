//go:build linux

package bench_test

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/bench"
)

// TestBenchSmoke keeps the benchmark harness working: it runs every measurement with tiny
// counts and checks only that each figure of each measured runtime is a positive number.
// No timing is asserted (`make bench` measures; see docs/BENCHMARKS.md).
func TestBenchSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := bench.SmokeOptions()
	o.Progress = t.Logf
	rep, err := bench.Run(ctx, t, o)
	if err != nil {
		t.Fatal(err)
	}
	measured := map[string]bool{}
	for _, b := range rep.Available() {
		measured[b.Key] = true
	}
	// The lxc backend is measured when the shim has it built in; the others always are.
	for _, k := range []string{bench.RuncShim, bench.CrunRunc, bench.CrunCrun} {
		if !measured[k] {
			t.Errorf("backend %s was not measured", k)
		}
	}
	for _, e := range rep.Errors() {
		t.Errorf("%s", e)
	}
	var na, ckpt int
	for _, f := range rep.Figures {
		if f.NA != "" {
			na++
			continue
		}
		bs := rep.Available()
		if f.Runtimes != nil {
			ckpt++
			bs = f.Runtimes
		}
		for _, b := range bs {
			s := f.Samples[b.Key]
			if len(s) == 0 {
				t.Errorf("%s / %s: no samples", f.ID, b.Key)
			}
			for _, v := range s {
				if !(v > 0) || math.IsInf(v, 0) {
					t.Errorf("%s / %s: sample %v is not a positive number", f.ID, b.Key, v)
				}
			}
		}
	}
	if na != 0 {
		t.Errorf("%d n/a rows, want none", na)
	}
	if ckpt != 4 {
		t.Errorf("%d checkpoint/restore figures, want checkpoint and restore of 1 MiB, at the filesystem level and through containerd", ckpt)
	}
	for _, tr := range rep.Targets() {
		if tr.Met == "—" && !strings.Contains(tr.Spread, "kernel ZFS") && !strings.Contains(tr.Spread, "no pod of 10") {
			t.Errorf("target %q, %s: not measured: %s", tr.Target, tr.Runtime, tr.Spread)
		}
	}
	var text, md bytes.Buffer
	rep.WriteText(&text)
	if err := rep.WriteMarkdown(&md, "go test -run TestBenchSmoke ./integration/bench"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ctr run --rm", "vs runc shim", "checkpoint (filesystem), 1 MiB", "restore (filesystem), 1 MiB", "lxcri (ZFS)", "restore to RUNNING through containerd, 1 MiB written"} {
		if !strings.Contains(md.String(), want) && !strings.Contains(strings.ToLower(text.String()), strings.ToLower(want)) {
			t.Errorf("report lacks %q", want)
		}
	}
	t.Logf("report:\n%s", text.String())
}

func TestSummarize(t *testing.T) {
	s := bench.Summarize([]float64{5, 1, 3})
	if s.Median != 3 || s.Lo != 1 || s.Hi != 5 || s.Spread != "min–max" {
		t.Errorf("Summarize(5 1 3) = %+v", s)
	}
	var xs []float64
	for i := 1; i <= 11; i++ {
		xs = append(xs, float64(i))
	}
	s = bench.Summarize(xs)
	if s.Median != 6 || s.Lo != 2 || s.Hi != 10 || s.Spread != "p10–p90" {
		t.Errorf("Summarize(1..11) = %+v", s)
	}
}

//go:build linux

package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestReportMarkdown renders a report of made-up figures: every target of the run is in
// the targets table with its ratio, spread and verdict, every measurement that ran has its
// method, and the templates leave nothing unfilled.
func TestReportMarkdown(t *testing.T) {
	o := DefaultOptions()
	rep := &Report{Options: o, Started: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Duration: time.Minute,
		Backends: DefaultBackends(), Ran: MeasurementKeys(), Facts: []Fact{{"CPU", "a | b"}}}
	base, lxc, cr := rep.Backends[0], rep.Backends[3], rep.Backends[2]
	add := func(id, unit string, higher bool, vals map[*Backend][]float64) {
		f := rep.figure("g", id, id+" name", unit, higher)
		for b, vs := range vals {
			for _, v := range vs {
				f.add(b, v)
			}
		}
	}
	add("ctr-run", "ms", false, map[*Backend][]float64{base: {200, 190, 210}, lxc: {100, 110, 90}, cr: {200, 200, 200}})
	add("client-create", "ms", false, map[*Backend][]float64{base: {60}, lxc: {50}})
	add("client-start", "ms", false, map[*Backend][]float64{base: {10}, lxc: {5}})
	add("mem-rss", "MiB", false, map[*Backend][]float64{base: {17.5}, lxc: {23}})
	add("pod10-rss", "MiB", false, map[*Backend][]float64{base: {1.9}, lxc: {5.5}})
	add("churn", "containers/s", true, map[*Backend][]float64{base: {12}, lxc: {18}})
	zb := &Backend{Key: LXCZFS, Name: "lxc on ZFS"}
	for _, id := range []string{"ckpt-api-1G", "restore-api-1G"} {
		f := rep.figure("5", id, id, "ms", false)
		f.Runtimes, f.Size = []*Backend{zb}, 1<<30
		for _, v := range []float64{80, 90, 150} {
			f.add(zb, v)
		}
	}

	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md, "make bench"); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	for _, want := range []string{
		"| start on lxc: `ctr run --rm` | lxcri lxc backend | 0.50× | 90.0 / 100 / 110 ms; runc shim 190 / 200 / 210 ms | ≤ 0.6× | yes |",
		"| start on crun: `ctr run --rm` | lxcri crun backend, crun | 1.00× |",
		"| start on crun: `ctr run --rm` | lxcri crun backend, runc | — | not measured in this run | ≤ 0.9× | — |",
		"| start on lxc: NewTask | lxcri lxc backend | 0.83× |",
		"| start on lxc: Task.Start | lxcri lxc backend | 0.50× |",
		"| shim RSS per container | lxcri lxc backend | 1.31× |",
		"| group of 10 (shim + helpers) vs 10 runc shims, RSS | lxcri lxc backend | 0.31× |",
		"| churn throughput | lxcri lxc backend | 1.50× |",
		"| checkpoint through containerd, 1 GiB written, zfs-fuse | lxc on ZFS | 0.090 s | 80.0 / 90.0 / 150 ms | ≤ 0.1 s | yes |",
		"| restore to RUNNING through containerd, 1 GiB written, zfs-fuse | lxc on ZFS | 0.090 s |",
		"| checkpoint through containerd, kernel ZFS | lxcri lxc backend, kernel ZFS | — | not measured: this host has no kernel ZFS (zfs-fuse only) |",
		"| CPU | a \\| b |",
		"- **ctr run**:", "- **Go client**:", "- **Memory**:", "- **Churn**:", "- **Exec**:",
		"- **Checkpoint/restore, filesystem level**", "- **Checkpoint/restore through containerd**, per data size (1 MiB, 100 MiB, 1 GiB), 3 rounds",
		"each latency figure has 3 warm-up runs per runtime before 20 timed ones",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(out, "<no value>") || strings.Contains(out, "{{") {
		t.Errorf("report has unfilled template fields:\n%s", out)
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}

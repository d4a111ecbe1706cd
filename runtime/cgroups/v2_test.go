package cgroups

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup2"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// pveGroup is where Proxmox VE 8 puts LXC container 100; its processes live below ns/.
const pveGroup = "/lxc/100"

// pveFiles is the cgroup of a running Debian 12 container on a Proxmox VE 8 host (kernel
// 6.8, pure cgroup v2), with 2 GiB memory, 512 MiB swap, 2 cores.
var pveFiles = map[string]string{
	"cgroup.controllers":  "cpuset cpu io memory hugetlb pids rdma misc\n",
	"cgroup.procs":        "",
	"cgroup.events":       "populated 1\nfrozen 0\n",
	"cgroup.freeze":       "0\n",
	"cgroup.kill":         "",
	"cgroup.type":         "domain\n",
	"memory.current":      "210284544\n",
	"memory.max":          "2147483648\n",
	"memory.high":         "max\n",
	"memory.low":          "0\n",
	"memory.min":          "0\n",
	"memory.peak":         "512393216\n",
	"memory.swap.current": "1052672\n",
	"memory.swap.max":     "536870912\n",
	"memory.swap.peak":    "4202496\n",
	"memory.stat": `anon 62484480
file 128061440
kernel 17448960
kernel_stack 1015808
pagetables 1822720
sec_pagetables 0
percpu 326880
sock 8192
vmalloc 0
shmem 4280320
zswap 0
zswapped 0
file_mapped 52006912
file_dirty 135168
file_writeback 0
swapcached 0
anon_thp 0
file_thp 0
shmem_thp 0
inactive_anon 62070784
active_anon 4694016
inactive_file 86196224
active_file 37584896
unevictable 0
slab_reclaimable 12789512
slab_unreclaimable 1426712
slab 14216224
workingset_refault_anon 0
workingset_refault_file 1203
workingset_activate_anon 0
workingset_activate_file 87
workingset_restore_anon 0
workingset_restore_file 0
workingset_nodereclaim 0
pgscan 4096
pgsteal 4090
pgscan_kswapd 0
pgscan_direct 4096
pgscan_khugepaged 0
pgsteal_kswapd 0
pgsteal_direct 4090
pgsteal_khugepaged 0
pgfault 1942077
pgmajfault 1043
pgrefill 211
pgactivate 9634
pgdeactivate 211
pglazyfree 0
pglazyfreed 0
zswpin 0
zswpout 0
zswpwb 0
thp_fault_alloc 0
thp_collapse_alloc 0
thp_swpout 0
thp_swpout_fallback 0
`,
	"memory.events":   "low 0\nhigh 0\nmax 27\noom 2\noom_kill 2\noom_group_kill 0\n",
	"memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=181\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=172\n",
	"pids.current":    "23\n",
	"pids.max":        "max\n",
	"pids.peak":       "41\n",
	"cpu.max":         "200000 100000\n",
	"cpu.weight":      "100\n",
	"cpu.stat": `usage_usec 84731254
user_usec 51120387
system_usec 33610867
core_sched.force_idle_usec 0
nr_periods 91824
nr_throttled 312
throttled_usec 4810233
nr_bursts 0
burst_usec 0
`,
	"cpu.pressure": "some avg10=0.12 avg60=0.05 avg300=0.01 total=3921774\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=2209311\n",
	"io.stat": `8:0 rbytes=1077248 wbytes=28672 rios=47 wios=7 dbytes=0 dios=0
253:2 rbytes=395419648 wbytes=1186508800 rios=9841 wios=121905 dbytes=0 dios=0
`,
	"io.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=982311\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=951007\n",
	// The container's own tree.
	"ns/cgroup.procs":                                       "",
	"ns/init.scope/cgroup.procs":                            "4107\n",
	"ns/system.slice/cgroup.procs":                          "",
	"ns/system.slice/cron.service/cgroup.procs":             "4388\n",
	"ns/system.slice/systemd-journald.service/cgroup.procs": "4221\n",
	"ns/user.slice/cgroup.procs":                            "",
}

// newV2Fixture writes the Proxmox fixture under a temporary mountpoint and loads it
// through the library with that mountpoint.
func newV2Fixture(t *testing.T) (*v2, string) {
	t.Helper()
	mnt := t.TempDir()
	dir := filepath.Join(mnt, pveGroup)
	for name, content := range pveFiles {
		writeFile(t, filepath.Join(dir, name), content)
	}
	writeFile(t, filepath.Join(mnt, "cgroup.controllers"), pveFiles["cgroup.controllers"])
	c, err := loadV2(mnt, pveGroup)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestV2Stats(t *testing.T) {
	c, _ := newV2Fixture(t)
	a, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.GetTypeUrl(), "io.containerd.cgroups.v2.Metrics"; got != want {
		t.Errorf("type url %q, want %q", got, want)
	}
	v, err := typeurl.UnmarshalAny(a)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := v.(*v2stats.Metrics)
	if !ok {
		t.Fatalf("stats are %T", v)
	}
	if m.Memory == nil || m.Pids == nil || m.CPU == nil || m.Io == nil || m.MemoryEvents == nil {
		t.Fatalf("stats incomplete: %+v", m)
	}
	tests := []struct {
		name      string
		got, want uint64
	}{
		{"memory usage", m.Memory.Usage, 210284544},
		{"memory limit", m.Memory.UsageLimit, 2147483648},
		{"memory max usage", m.Memory.MaxUsage, 512393216},
		{"swap usage", m.Memory.SwapUsage, 1052672},
		{"swap limit", m.Memory.SwapLimit, 536870912},
		{"anon", m.Memory.Anon, 62484480},
		{"file", m.Memory.File, 128061440},
		{"inactive file", m.Memory.InactiveFile, 86196224},
		{"active file", m.Memory.ActiveFile, 37584896},
		{"pgmajfault", m.Memory.Pgmajfault, 1043},
		{"memory pressure total", m.Memory.GetPSI().GetSome().GetTotal(), 181},
		{"pids current", m.Pids.Current, 23},
		{"pids limit max", m.Pids.Limit, math.MaxUint64},
		{"cpu usage", m.CPU.UsageUsec, 84731254},
		{"cpu user", m.CPU.UserUsec, 51120387},
		{"cpu system", m.CPU.SystemUsec, 33610867},
		{"cpu periods", m.CPU.NrPeriods, 91824},
		{"cpu throttled", m.CPU.NrThrottled, 312},
		{"cpu throttled usec", m.CPU.ThrottledUsec, 4810233},
		{"io devices", uint64(len(m.Io.Usage)), 2},
		{"io 253:2 rbytes", ioEntry(m, 253, 2).GetRbytes(), 395419648},
		{"io 253:2 wios", ioEntry(m, 253, 2).GetWios(), 121905},
		{"io 8:0 rios", ioEntry(m, 8, 0).GetRios(), 47},
		{"oom kills", m.MemoryEvents.OomKill, 2},
		{"memory max events", m.MemoryEvents.Max, 27},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("%d, want %d", tc.got, tc.want)
			}
		})
	}
}

func ioEntry(m *v2stats.Metrics, major, minor uint64) *v2stats.IOEntry {
	for _, e := range m.Io.Usage {
		if e.Major == major && e.Minor == minor {
			return e
		}
	}
	return nil
}

func TestV2Update(t *testing.T) {
	shares := uint64(512)
	tests := []struct {
		name string
		res  specs.LinuxResources
		want map[string]string
	}{
		{"memory and swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 30)), Swap: ptr(int64(3 << 29))}},
			map[string]string{"memory.max": "1073741824", "memory.swap.max": "536870912"}},
		{"pids", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(512))}},
			map[string]string{"pids.max": "512"}},
		{"cpu quota and shares", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Shares: &shares}},
			map[string]string{"cpu.max": "50000 100000", "cpu.weight": fmt.Sprint(cgroup2.ConvertCPUSharesToCgroupV2Value(shares))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, dir := newV2Fixture(t)
			if err := c.Update(context.Background(), &tc.res); err != nil {
				t.Fatal(err)
			}
			for file, want := range tc.want {
				if got := readTrim(t, filepath.Join(dir, file)); got != want {
					t.Errorf("%s = %q, want %q", file, got, want)
				}
			}
		})
	}
}

func TestV2Control(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, c *v2, dir string)
	}{
		{"pids are recursive", func(t *testing.T, c *v2, dir string) {
			pids, err := c.Pids(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := []int{4107, 4221, 4388}; !slices.Equal(pids, want) {
				t.Errorf("pids %v, want %v", pids, want)
			}
		}},
		{"freeze and thaw", func(t *testing.T, c *v2, dir string) {
			if err := c.Freeze(ctx); err != nil {
				t.Fatal(err)
			}
			if got := readTrim(t, filepath.Join(dir, "cgroup.freeze")); got != "1" {
				t.Errorf("after Freeze cgroup.freeze %q", got)
			}
			if err := c.Thaw(ctx); err != nil {
				t.Fatal(err)
			}
			if got := readTrim(t, filepath.Join(dir, "cgroup.freeze")); got != "0" {
				t.Errorf("after Thaw cgroup.freeze %q", got)
			}
		}},
		{"sigkill writes cgroup.kill", func(t *testing.T, c *v2, dir string) {
			emptyProcs(t, dir) // the fixture's pids may be real processes here
			if err := c.KillAll(ctx, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if got := readTrim(t, filepath.Join(dir, "cgroup.kill")); got != "1" {
				t.Errorf("cgroup.kill %q", got)
			}
		}},
		{"sigterm signals every pid", func(t *testing.T, c *v2, dir string) {
			ch := startChild(t, "sleep")
			emptyProcs(t, dir)
			writeFile(t, filepath.Join(dir, "ns/init.scope/cgroup.procs"), fmt.Sprintf("%d\n", ch.pid()))
			if err := c.KillAll(ctx, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			ch.waitSignaled(t, syscall.SIGTERM)
			if got := readTrim(t, filepath.Join(dir, "cgroup.freeze")); got != "0" {
				t.Errorf("after KillAll cgroup.freeze %q", got)
			}
		}},
		{"sigterm keeps a paused cgroup paused", func(t *testing.T, c *v2, dir string) {
			emptyProcs(t, dir)
			writeFile(t, filepath.Join(dir, "cgroup.freeze"), "1\n")
			if err := c.KillAll(ctx, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if got := readTrim(t, filepath.Join(dir, "cgroup.freeze")); got != "1" {
				t.Errorf("after KillAll cgroup.freeze %q", got)
			}
		}},
		{"oom killed", func(t *testing.T, c *v2, dir string) {
			if n, err := c.OOMKilled(); err != nil || n != 2 {
				t.Errorf("OOMKilled() = %d, %v, want 2", n, err)
			}
		}},
		{"oom events", func(t *testing.T, c *v2, dir string) {
			ch, err := c.OOMEvents(ctx)
			if err != nil {
				t.Fatal(err)
			}
			expectValues(t, ch, 2) // kills before the call
			writeFile(t, filepath.Join(dir, "memory.events"), strings.Replace(pveFiles["memory.events"], "oom_kill 2", "oom_kill 3", 1))
			expectValues(t, ch, 1)
			writeFile(t, filepath.Join(dir, "memory.high"), "max\n") // not watched
			select {
			case _, ok := <-ch:
				t.Fatalf("unexpected value (open %v)", ok)
			case <-time.After(100 * time.Millisecond):
			}
			// The container's last process exits: the watch ends.
			emptyProcs(t, dir)
			writeFile(t, filepath.Join(dir, "cgroup.events"), "populated 0\nfrozen 0\n")
			expectClosed(t, ch)
		}},
		{"oom events end with ctx", func(t *testing.T, c *v2, dir string) {
			ctx, cancel := context.WithCancel(ctx)
			ch, err := c.OOMEvents(ctx)
			if err != nil {
				t.Fatal(err)
			}
			expectValues(t, ch, 2)
			cancel()
			expectClosed(t, ch)
		}},
		{"removed cgroup is not found", func(t *testing.T, c *v2, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Stats(ctx); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), pveGroup) {
				t.Errorf("Stats = %v, want NotFound naming %s", err, pveGroup)
			}
			if _, err := c.Pids(ctx); !errdefs.IsNotFound(err) {
				t.Errorf("Pids = %v, want NotFound", err)
			}
			if _, err := c.OOMKilled(); !errdefs.IsNotFound(err) {
				t.Errorf("OOMKilled = %v, want NotFound", err)
			}
			if _, err := c.OOMEvents(ctx); !errdefs.IsNotFound(err) {
				t.Errorf("OOMEvents = %v, want NotFound", err)
			}
			if err := c.Update(ctx, &specs.LinuxResources{}); !errdefs.IsNotFound(err) {
				t.Errorf("Update = %v, want NotFound", err)
			}
			if err := c.KillAll(ctx, syscall.SIGKILL); !errdefs.IsNotFound(err) {
				t.Errorf("KillAll = %v, want NotFound", err)
			}
			if _, err := loadV2(filepath.Dir(filepath.Dir(dir)), pveGroup); !errdefs.IsNotFound(err) {
				t.Errorf("loadV2 = %v, want NotFound", err)
			}
		}},
		{"relative group is invalid", func(t *testing.T, c *v2, dir string) {
			if _, err := loadV2(filepath.Dir(filepath.Dir(dir)), "lxc/100"); !errdefs.IsInvalidArgument(err) {
				t.Errorf("loadV2 = %v, want InvalidArgument", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, dir := newV2Fixture(t)
			tc.run(t, c, dir)
		})
	}
}

// emptyProcs empties every cgroup.procs of the fixture.
func emptyProcs(t *testing.T, dir string) {
	t.Helper()
	for name := range pveFiles {
		if strings.HasSuffix(name, "cgroup.procs") {
			writeFile(t, filepath.Join(dir, name), "")
		}
	}
}

// expectValues receives n values from ch.
func expectValues(t *testing.T, ch <-chan struct{}, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d values", i, n)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d of %d values", i, n)
		}
	}
}

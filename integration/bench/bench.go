//go:build linux

// Package bench measures lxcri's shim against containerd's runc shim.
//
// Run starts a private containerd through integration/harness and measures, for every
// lxcri backend the shim has built in (the crun backend driving runc, the crun backend
// driving crun, the lxc backend) and for containerd's io.containerd.runc.v2 as the
// baseline:
//
//  1. the wall time of `ctr run --rm IMG id echo hi`, and create / start / wait / delete
//     through the containerd Go client;
//  2. the memory (Rss and Pss of /proc/<pid>/smaps_rollup) of the shim processes: one shim
//     per container, and pods of grouped containers sharing one shim;
//  3. the throughput of a churn of containers (create, start, wait, delete) with a number
//     of them in flight;
//  4. the latency of an exec into a running container (`ctr task exec` and the Go client);
//  5. checkpoint/restore of the root filesystem per data size: lxcri's ZFS snapshot and
//     clone (runtime/zfsroot on a zfs-fuse pool) against the filesystem part of the runc
//     shim's `ctr checkpoint --rw` / `ctr restore --rw` (a diff of the rw snapshot into
//     the content store and its apply); CRIU is not measured. And end to end through
//     containerd's API: a container of the lxc backend on ZFS that wrote the data is
//     checkpointed (`ctr containers checkpoint --task`) and restored to RUNNING
//     (`ctr containers restore --live`).
//
// Every measurement is a file of its own (ctrrun.go, lifecycle.go, memory.go, churn.go,
// exec.go, checkpoint.go, ckptapi.go), listed in measurements.go, with its method in
// templates/method.md.tmpl; the Markdown report is templates/report.md.tmpl and the
// targets it holds the figures against are in targets.go.
//
// Timed samples are interleaved over the backends (A B C, C B A, ...) so that drift of the
// machine cancels out. All runtimes run under the same containerd; the lxcri backends are
// chosen per container through the runtime options' config_path (what
// `ctr run --runtime-config-path` sends), so one daemon serves all of them.
//
// Benchmarks are not tests: nothing here asserts a timing. cmd/lxcri-bench is the program
// `make bench` runs; TestBenchSmoke runs every measurement once with tiny counts.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/shim"

	"github.com/lxcri/lxcri/integration/harness"
	"github.com/lxcri/lxcri/integration/zfstest"
)

// Options sets the counts of a run.
type Options struct {
	// Runs is the number of timed samples per backend of each latency figure.
	Runs int
	// Warmup is the number of untimed runs per backend before the timed ones.
	Warmup int
	// Churn is the number of containers of one throughput round, InFlight how many of them
	// run at a time, ChurnRounds how many rounds each backend gets.
	Churn, InFlight, ChurnRounds int
	// MemContainers is the number of containers, each with its own shim, whose shims are
	// measured per round; MemRounds the number of rounds.
	MemContainers, MemRounds int
	// PodSizes are the sizes of the grouped pods (containers sharing one shim).
	PodSizes []int
	// Settle is how long the shims of a memory round run before they are measured.
	Settle time.Duration
	// CallTimeout bounds each ctr call and each container's life through the Go client.
	CallTimeout time.Duration
	// LogLevel is containerd's log level. The harness runs containerd at "debug", which
	// also makes it start every shim with -debug; any other level runs containerd through
	// a wrapper that replaces the level.
	LogLevel string
	// Backends chooses backends by key; empty means all of DefaultBackends. The baseline
	// (runc-shim) is always measured.
	Backends []string
	// CkptSizes are the data sizes (bytes) of the checkpoint/restore figures; CkptRounds
	// how many samples each runtime gets per size.
	CkptSizes  []int64
	CkptRounds int
	// Only, when not empty, names the measurements to run (keys of Measurements); the
	// others are left out of the report.
	Only []string
	// Progress, if set, receives one line per step.
	Progress func(format string, args ...any)
}

// DefaultOptions are the counts of `make bench`.
func DefaultOptions() Options {
	return Options{
		Runs: 20, Warmup: 3,
		Churn: 50, InFlight: 8, ChurnRounds: 3,
		MemContainers: 10, MemRounds: 3, PodSizes: []int{2, 10}, Settle: time.Second,
		CallTimeout: 2 * time.Minute,
		LogLevel:    "info",
		CkptSizes:   []int64{1 << 20, 100 << 20, 1 << 30}, CkptRounds: 3,
	}
}

// SmokeOptions are the tiny counts of TestBenchSmoke: every measurement runs, once or twice.
func SmokeOptions() Options {
	return Options{
		Runs: 1, Warmup: 0,
		Churn: 4, InFlight: 2, ChurnRounds: 1,
		MemContainers: 2, MemRounds: 1, PodSizes: []int{2}, Settle: 200 * time.Millisecond,
		CallTimeout: 30 * time.Second,
		LogLevel:    "info",
		CkptSizes:   []int64{1 << 20}, CkptRounds: 1,
	}
}

func (o *Options) validate() error {
	if o.Runs < 1 || o.Churn < 1 || o.InFlight < 1 || o.ChurnRounds < 1 || o.MemContainers < 1 || o.MemRounds < 1 || o.Warmup < 0 {
		return fmt.Errorf("bench: counts must be positive: %+v", *o)
	}
	for _, k := range o.PodSizes {
		if k < 1 {
			return fmt.Errorf("bench: pod size %d", k)
		}
	}
	if len(o.CkptSizes) == 0 || o.CkptRounds < 1 {
		return fmt.Errorf("bench: checkpoint sizes and rounds must be given: %v, %d", o.CkptSizes, o.CkptRounds)
	}
	for _, n := range o.CkptSizes {
		if n < 1 {
			return fmt.Errorf("bench: checkpoint size %d", n)
		}
	}
	for _, k := range o.Only {
		if measurementByKey(k) == nil {
			return fmt.Errorf("bench: unknown measurement %q (known: %s)", k, strings.Join(MeasurementKeys(), ", "))
		}
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Minute
	}
	return nil
}

// runner holds one run's containerd and state.
type runner struct {
	tb  testing.TB
	ctx context.Context
	o   Options
	env *harness.Env
	cl  *client.Client
	img client.Image

	all  []*Backend // selected, baseline first
	bs   []*Backend // available
	crun *crunHost
	// stateDir holds the shim's state and configurations; pool is the run's zfs-fuse pool.
	stateDir, pool string
	rep            *Report
	mu             sync.Mutex
	seq            int
	lost           map[string][]string // backend key: runs whose stdout was not "hi\n"

	names        []string       // container ids and group names, for sweepSockets
	staleSockets map[string]int // backend key: shim sockets left behind, removed by us
	leftShims    map[string]int // backend key: shims left behind by a failed create
	facts        []Fact
}

// Run starts a private containerd, measures every selected backend and returns the report.
// Everything it starts or mounts is removed by tb's cleanup (harness.Start registers the
// containerd's; Run registers its own state folder, cgroups and the crun host setup).
func Run(ctx context.Context, tb testing.TB, o Options) (*Report, error) {
	tb.Helper()
	if err := o.validate(); err != nil {
		return nil, err
	}
	started := time.Now()
	r := &runner{tb: tb, ctx: ctx, o: o, crun: &crunHost{}, staleSockets: map[string]int{}, leftShims: map[string]int{}}
	cgMode := cgroupMode() // before the crun host setup changes it

	want := map[string]bool{}
	for _, k := range o.Backends {
		want[k] = true
	}
	for _, b := range DefaultBackends() {
		if b.Baseline || len(want) == 0 || want[b.Key] {
			r.all = append(r.all, b)
			delete(want, b.Key)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for k := range want {
			unknown = append(unknown, k)
		}
		return nil, fmt.Errorf("bench: unknown backends %v (known: %s, %s, %s, %s)", unknown, RuncShim, CrunRunc, CrunCrun, LXC)
	}

	// Cleanups run last-registered first: the harness's (containers, daemon, shims,
	// mounts) before the namespace cgroups, before the state folder and the hugetlb mount.
	tb.Cleanup(func() {
		if err := r.crun.release(); err != nil {
			tb.Logf("bench: %v", err)
		}
	})
	stateDir, err := os.MkdirTemp("/run", "lxcri-bench-")
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { os.RemoveAll(stateDir) })
	r.stateDir = stateDir
	base := filepath.Join(stateDir, "host.toml")
	if err := os.WriteFile(base, []byte(fmt.Sprintf("state_dir = %q\nbackend = \"crun\"\n[crun]\nbinary = \"runc\"\n", filepath.Join(stateDir, "state"))), 0o644); err != nil {
		return nil, err
	}
	for _, b := range r.all {
		if b.LXCRI == "" {
			continue
		}
		b.configPath = filepath.Join(stateDir, b.Key+".toml")
		body := fmt.Sprintf("state_dir = %q\n%s", filepath.Join(stateDir, "state"), b.LXCRI)
		if err := os.WriteFile(b.configPath, []byte(body), 0o644); err != nil {
			return nil, err
		}
	}

	ns := "bench-" + randHex(4) // not lxcri-*: the shim suite's leak check looks at those
	tb.Cleanup(func() {
		// hugetlb cgroups of crun containers are only visible while it is mounted
		if r.crun.used {
			if err := r.crun.ensure(); err != nil {
				tb.Logf("bench: cleanup: %v", err)
			}
		}
		removeNamespaceCgroups(tb, ns)
	})
	// Runs after the harness's cleanup, which kills shims that outlive the daemon: their
	// sockets stay in /run/containerd/s.
	tb.Cleanup(func() {
		if n := r.sweepSockets(); n > 0 {
			r.progress("cleanup: removed %d sockets of this run's shims left in /run/containerd/s", n)
		}
	})
	// The pool goes before containerd: its translation layer (zfs-fuse) is then on the
	// daemon's PATH, which the shims inherit, and its cleanup runs after the harness's.
	var largest int64
	for _, n := range o.CkptSizes {
		largest = max(largest, n)
	}
	poolSize := max(int64(zfstest.DefaultSize), 4*largest) // sparse: data, metadata, headroom
	r.pool, _ = zfstest.Pool(tb, zfstest.WithSize(poolSize))
	opts := []harness.Option{
		harness.WithNamespace(ns),
		harness.WithDaemonEnv("LXCRI_CONFIG=" + base),
		harness.WithTimeout(2 * time.Minute),
	}
	if o.LogLevel != "debug" {
		restore, err := wrapContainerd(tb, o.LogLevel)
		if err != nil {
			return nil, err
		}
		env := harness.Start(tb, opts...)
		restore()
		r.env = env
	} else {
		r.env = harness.Start(tb, opts...)
	}
	// Runs before the harness's cleanup: crun 1.8.1 deletes its containers only with the
	// hugetlb mount in place.
	tb.Cleanup(func() {
		if r.crun.used {
			if err := r.crun.ensure(); err != nil {
				tb.Logf("bench: cleanup: %v", err)
			}
		}
	})
	r.cl = r.env.Client()
	r.img, err = r.cl.GetImage(r.env.Context(), r.env.Image)
	if err != nil {
		return nil, fmt.Errorf("bench: image %s: %w", r.env.Image, err)
	}
	if ok, err := r.img.IsUnpacked(r.env.Context(), ""); err != nil || !ok {
		if err := r.img.Unpack(r.env.Context(), ""); err != nil {
			return nil, fmt.Errorf("bench: unpack %s: %w", r.env.Image, err)
		}
	}

	r.rep = &Report{Options: o, Started: started}
	r.rep.Facts = gatherFacts(r.env, o.LogLevel, cgMode)
	r.rep.Backends = r.all
	if n := otherDaemons(r.env.DaemonPID()); n > 0 {
		r.rep.Facts = append(r.rep.Facts, Fact{"Other containerd daemons at start", fmt.Sprintf("%d (other test runs share the CPUs)", n)})
	}

	if err := r.probe(); err != nil {
		return nil, err
	}
	for _, m := range r.selected() {
		if err := ctx.Err(); err != nil {
			return r.rep, err
		}
		if err := m.run(r); err != nil {
			return r.rep, fmt.Errorf("bench: %s: %w", m.Key, err)
		}
		r.rep.Ran = append(r.rep.Ran, m.Key)
	}
	if la := strings.Fields(readTrim("/proc/loadavg")); len(la) >= 3 {
		r.rep.Facts = append(r.rep.Facts, Fact{"Load average at end", strings.Join(la[:3], " ")})
	}
	if p := cpuPressure(); p != "" {
		r.rep.Facts = append(r.rep.Facts, Fact{"CPU pressure at end", p})
	}
	r.rep.Notes = append(r.rep.Notes, logNotes(r.env.LogPath)...)
	r.rep.Notes = append(r.rep.Notes, r.lostNotes()...)
	r.rep.Duration = time.Since(started)
	return r.rep, nil
}

func (r *runner) progress(format string, args ...any) {
	if r.o.Progress != nil {
		r.o.Progress(format, args...)
	}
}

func (r *runner) id(phase string, b *Backend) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	id := fmt.Sprintf("%s-%s-%d", phase, b.Key, r.seq)
	r.names = append(r.names, id)
	return id
}

// rounds yields the backends in alternating order: A B C, C B A, A B C, ...
func rounds(bs []*Backend, round int) []*Backend {
	out := append([]*Backend(nil), bs...)
	if round%2 == 1 {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// before prepares the host for one sample of b: hugetlb mounted as a v1 hierarchy for
// crun 1.8.1, not mounted (unless someone else mounted it) for the others.
func (r *runner) before(b *Backend) error {
	if b.NeedsCrunHost {
		return r.crun.ensure()
	}
	return r.crun.release()
}

// probe runs one container per backend through the Go client and through ctr (which also
// warms caches up); a backend the shim does not have built in is left out of the run.
func (r *runner) probe() error {
	for _, b := range r.all {
		if err := r.before(b); err != nil {
			return err
		}
		id := r.id("probe", b)
		_, err := r.lifecycle(b, id, nil)
		if err != nil && b.Optional && notBuiltIn(err) {
			b.Unavailable = "not built into this shim: " + r.shimError(err)
			r.progress("%s: not measured: %s", b.Key, b.Unavailable)
			if r.killLeftoverShims() {
				r.leftShims[b.Key]++
			}
			r.removeStaleSocket(nil, id)
			continue
		}
		if err != nil {
			return fmt.Errorf("probe %s: %w", b.Key, err)
		}
		r.bs = append(r.bs, b)
	}
	if len(r.bs) == 0 || !r.bs[0].Baseline {
		return errors.New("bench: the baseline is not available")
	}
	return nil
}

// shimError returns the shim's own message for a failed task create: containerd retries
// a create that failed with NotImplemented on the older task API and reports that
// attempt's error instead, so the shim's is looked up in containerd's log.
func (r *runner) shimError(err error) string {
	b, _ := os.ReadFile(r.env.LogPath)
	const marker = "is not available in this build"
	if i := bytes.LastIndex(b, []byte(marker)); i >= 0 {
		if start := bytes.LastIndex(b[:i], []byte(`error="`)); start >= 0 {
			// the logfmt value runs to the first unescaped quote
			var msg strings.Builder
			for j := start + len(`error="`); j < len(b) && b[j] != '\n'; j++ {
				if b[j] == '\\' && j+1 < len(b) {
					j++
				} else if b[j] == '"' {
					break
				}
				msg.WriteByte(b[j])
			}
			return msg.String()
		}
	}
	return firstLine(err.Error())
}

// killLeftoverShims kills the shims of this run's containerd that outlive their tasks
// (after a failed create containerd cannot always shut its shim down).
func (r *runner) killLeftoverShims() bool {
	if r.waitNoShims(2*time.Second) == nil {
		return false
	}
	for _, pid := range r.env.ShimProcesses() {
		r.progress("killing shim %d left behind by a failed create", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	r.waitNoShims(5 * time.Second)
	return true
}

// removeStaleSocket removes the socket of a shim of group (named as containerd's pkg/shim
// names it) that no shim listens on any more, and counts it for b (if not nil).
func (r *runner) removeStaleSocket(b *Backend, group string) {
	addr, err := shim.SocketAddress(withNS(context.Background(), r.env), r.env.Socket, group, false)
	if err != nil || shim.CanConnect(addr) {
		return
	}
	if err := shim.RemoveSocket(addr); err == nil && b != nil {
		r.mu.Lock()
		r.staleSockets[b.Key]++
		r.mu.Unlock()
	}
}

// step is one measurement over the backends: a backend that fails is recorded on the
// step's figures and left out of the rest of the step, the others go on.
type step struct {
	r    *runner
	figs []*Figure
	bad  map[string]bool
	// keep, if set, names the containers a failure must not remove (other backends' live
	// containers).
	keep func() []string
}

func (r *runner) newStep(figs ...*Figure) *step {
	return &step{r: r, figs: figs, bad: map[string]bool{}}
}

// backends are the step's backends still going, in the order of round.
func (s *step) backends(round int) []*Backend {
	var out []*Backend
	for _, b := range rounds(s.r.bs, round) {
		if !s.bad[b.Key] {
			out = append(out, b)
		}
	}
	return out
}

func (s *step) fail(b *Backend, err error) {
	s.bad[b.Key] = true
	for _, f := range s.figs {
		f.Errors[b.Key] = err.Error()
	}
	s.r.progress("%s failed: %v", b.Key, err)
	var keep []string
	if s.keep != nil {
		keep = s.keep()
	}
	s.r.reset(keep...)
}

// reset removes what a failure may have left: every container of the run's namespace that
// is not in use (keep), and shims that do not go away.
func (r *runner) reset(keep ...string) {
	kept := map[string]bool{}
	for _, id := range keep {
		kept[id] = true
	}
	ctx := withNS(context.Background(), r.env)
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	cs, err := r.cl.Containers(lctx)
	cancel()
	if err != nil {
		r.progress("reset: list containers: %v", err)
	}
	for _, c := range cs {
		if kept[c.ID()] {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		if t, err := c.Task(cctx, nil); err == nil {
			t.Delete(cctx, client.WithProcessKill)
		}
		c.Delete(cctx, client.WithSnapshotCleanup)
		cancel()
	}
	if len(kept) > 0 {
		return
	}
	if r.waitNoShims(10*time.Second) != nil {
		for _, pid := range r.env.ShimProcesses() {
			r.progress("reset: killing shim %d", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		r.waitNoShims(10 * time.Second)
	}
}

// sweepSockets removes the sockets, named after this run's containers and groups, that
// no shim listens on.
func (r *runner) sweepSockets() int {
	if r.env == nil {
		return 0
	}
	r.mu.Lock()
	names := append([]string(nil), r.names...)
	r.mu.Unlock()
	ctx := withNS(context.Background(), r.env)
	n := 0
	for _, id := range names {
		addr, err := shim.SocketAddress(ctx, r.env.Socket, id, false)
		if err != nil {
			continue
		}
		if _, err := os.Stat(strings.TrimPrefix(addr, "unix://")); err != nil || shim.CanConnect(addr) {
			continue
		}
		if shim.RemoveSocket(addr) == nil {
			n++
		}
	}
	return n
}

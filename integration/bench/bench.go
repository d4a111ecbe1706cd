//go:build linux

// Package bench measures lxcri's shim against containerd's runc shim (issue #5).
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
//     the content store and its apply); CRIU is not measured.
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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/integration/harness"
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
	rep  *Report
	mu   sync.Mutex
	seq  int
	lost map[string][]string // backend key: runs whose stdout was not "hi\n"

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
	steps := []struct {
		name string
		f    func() error
	}{
		{"ctr run", r.measureCtrRun},
		{"client lifecycle", r.measureClientLifecycle},
		{"memory", r.measureMemory},
		{"churn", r.measureChurn},
		{"exec", r.measureExec},
		{"checkpoint", r.measureCheckpoint},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return r.rep, err
		}
		if err := s.f(); err != nil {
			return r.rep, fmt.Errorf("bench: %s: %w", s.name, err)
		}
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

// ---- 1. ctr run --rm and the Go client's lifecycle ------------------------------------

func (r *runner) measureCtrRun() error {
	f := r.rep.figure("1. start", "ctr-run", "`ctr run --rm IMG id echo hi` wall time", "ms", false)
	st := r.newStep(f)
	for i := 0; i < r.o.Warmup; i++ {
		for _, b := range st.backends(i) {
			if err := r.before(b); err != nil {
				return err
			}
			if _, err := r.ctrRun(b, r.id("warm", b)); err != nil {
				st.fail(b, err)
			}
		}
	}
	for i := 0; i < r.o.Runs; i++ {
		r.progress("ctr run --rm: round %d/%d", i+1, r.o.Runs)
		for _, b := range st.backends(i) {
			if err := r.ctx.Err(); err != nil {
				return err
			}
			if err := r.before(b); err != nil {
				return err
			}
			d, err := r.ctrRun(b, r.id("run", b))
			if err != nil {
				st.fail(b, err)
				continue
			}
			f.add(b, ms(d))
		}
	}
	return nil
}

func (r *runner) ctrRun(b *Backend, id string) (time.Duration, error) {
	args := []string{"run", "--rm", "--runtime", b.Runtime}
	if b.configPath != "" {
		args = append(args, "--runtime-config-path", b.configPath)
	}
	args = append(args, r.env.Image, id, "echo", "hi")
	out, d, err := r.ctr(args...)
	if err != nil {
		return 0, err
	}
	if out != "hi\n" {
		r.lostOutput(b, "ctr run", id, out)
	}
	return d, nil
}

// ctr runs the tools folder's ctr against the Env and times it.
func (r *runner) ctr(args ...string) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.o.CallTimeout)
	defer cancel()
	full := append([]string{"-a", r.env.Socket, "-n", r.env.Namespace}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(r.env.ToolsDir, "ctr"), full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return "", 0, fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, lastLines(errb.String(), 5))
	}
	return out.String(), d, nil
}

// lcTimes are the phases of one container's life through the Go client.
type lcTimes struct {
	create, start, wait, del, total time.Duration
}

func (r *runner) runtimeOpt(b *Backend) client.NewContainerOpts {
	if b.configPath == "" {
		return client.WithRuntime(b.Runtime, nil)
	}
	return client.WithRuntime(b.Runtime, &runtimeoptions.Options{ConfigPath: b.configPath})
}

func (r *runner) newContainer(ctx context.Context, b *Backend, id string, annotations map[string]string, args ...string) (client.Container, error) {
	specOpts := []oci.SpecOpts{oci.WithImageConfig(r.img), oci.WithProcessArgs(args...)}
	if len(annotations) > 0 {
		specOpts = append(specOpts, oci.WithAnnotations(annotations))
	}
	return r.cl.NewContainer(ctx, id,
		client.WithImage(r.img),
		client.WithNewSnapshot(id+"-snap", r.img),
		r.runtimeOpt(b),
		client.WithNewSpec(specOpts...),
	)
}

// lifecycle runs `echo hi` in a new container through the Go client: NewContainer (record
// and snapshot), NewTask (the shim starts and the runtime creates the container), Start,
// wait for the exit, Delete of the task, Delete of the container and its snapshot.
func (r *runner) lifecycle(b *Backend, id string, annotations map[string]string) (t lcTimes, retErr error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.o.CallTimeout)
	defer cancel()
	ctx = withNS(ctx, r.env)
	var out harness.SyncBuffer
	ioc := cio.NewCreator(cio.WithStreams(nil, &out, io.Discard))
	t0 := time.Now()
	c, err := r.newContainer(ctx, b, id, annotations, "echo", "hi")
	if err != nil {
		return t, err
	}
	defer func() {
		if retErr != nil {
			c.Delete(withNS(context.Background(), r.env), client.WithSnapshotCleanup)
		}
	}()
	t1 := time.Now()
	task, err := c.NewTask(ctx, ioc)
	if err != nil {
		return t, err
	}
	t2 := time.Now()
	defer func() {
		if retErr != nil {
			task.Delete(withNS(context.Background(), r.env), client.WithProcessKill)
		}
	}()
	ch, err := task.Wait(ctx)
	if err != nil {
		return t, err
	}
	t3 := time.Now()
	if err := task.Start(ctx); err != nil {
		return t, err
	}
	t4 := time.Now()
	var st client.ExitStatus
	select {
	case st = <-ch:
	case <-ctx.Done():
		return t, fmt.Errorf("waiting for %s: %w", id, ctx.Err())
	}
	t5 := time.Now()
	code, _, err := st.Result()
	if err != nil {
		return t, err
	}
	if _, err := task.Delete(ctx); err != nil {
		return t, err
	}
	t6 := time.Now()
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		return t, err
	}
	t7 := time.Now()
	if code != 0 {
		return t, fmt.Errorf("%s exited %d", id, code)
	}
	if s := out.String(); s != "hi\n" {
		r.lostOutput(b, "Go client", id, s)
	}
	return lcTimes{create: t2.Sub(t1), start: t4.Sub(t3), wait: t5.Sub(t4), del: t6.Sub(t5), total: t7.Sub(t0)}, nil
}

func (r *runner) measureClientLifecycle() error {
	const g = "1. start"
	fc := r.rep.figure(g, "client-create", "Go client: create (NewTask: shim start + runtime create)", "ms", false)
	fs := r.rep.figure(g, "client-start", "Go client: start (Task.Start)", "ms", false)
	fw := r.rep.figure(g, "client-wait", "Go client: wait (Start returned → exit status)", "ms", false)
	fd := r.rep.figure(g, "client-delete", "Go client: delete (Task.Delete)", "ms", false)
	ft := r.rep.figure(g, "client-total", "Go client: total (incl. container record + snapshot)", "ms", false)
	st := r.newStep(fc, fs, fw, fd, ft)
	for i := 0; i < r.o.Warmup; i++ {
		for _, b := range st.backends(i) {
			if err := r.before(b); err != nil {
				return err
			}
			if _, err := r.lifecycle(b, r.id("warm", b), nil); err != nil {
				st.fail(b, err)
			}
		}
	}
	for i := 0; i < r.o.Runs; i++ {
		r.progress("Go client lifecycle: round %d/%d", i+1, r.o.Runs)
		for _, b := range st.backends(i) {
			if err := r.ctx.Err(); err != nil {
				return err
			}
			if err := r.before(b); err != nil {
				return err
			}
			t, err := r.lifecycle(b, r.id("cl", b), nil)
			if err != nil {
				st.fail(b, err)
				continue
			}
			fc.add(b, ms(t.create))
			fs.add(b, ms(t.start))
			fw.add(b, ms(t.wait))
			fd.add(b, ms(t.del))
			ft.add(b, ms(t.total))
		}
	}
	return nil
}

// ---- 2. memory ----------------------------------------------------------------------

// running is a detached container of the memory and exec measurements.
type running struct {
	c    client.Container
	task client.Task
	pid  int
}

// startDetached starts `sleep 3600` in a new container whose stdout and stderr go through
// fifos (as CRI's do) into the void.
func (r *runner) startDetached(b *Backend, id string, annotations map[string]string) (*running, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.o.CallTimeout)
	defer cancel()
	ctx = withNS(ctx, r.env)
	c, err := r.newContainer(ctx, b, id, annotations, "sleep", "3600")
	if err != nil {
		return nil, err
	}
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, io.Discard, io.Discard)))
	if err != nil {
		c.Delete(ctx, client.WithSnapshotCleanup)
		return nil, err
	}
	if err := task.Start(ctx); err != nil {
		task.Delete(ctx, client.WithProcessKill)
		c.Delete(ctx, client.WithSnapshotCleanup)
		return nil, err
	}
	return &running{c: c, task: task, pid: int(task.Pid())}, nil
}

// stop kills (SIGKILL) and deletes containers, 4 at a time.
func (r *runner) stop(rs []*running) error {
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, x := range rs {
		if x == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(x *running) {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(withNS(context.Background(), r.env), time.Minute)
			defer cancel()
			if _, err := x.task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("delete task %s: %w", x.c.ID(), err))
				mu.Unlock()
			}
			if err := x.c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("delete container %s: %w", x.c.ID(), err))
				mu.Unlock()
			}
		}(x)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitNoShims waits until the Env's shims have exited.
func (r *runner) waitNoShims(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := r.env.ShimProcesses()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("shim processes %v still running %v after their containers were deleted", pids, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// memRound measures one backend: MemContainers containers with a shim each, and one pod
// per pod size whose containers share a shim. It returns the memory of each single shim
// (with its helpers), and per pod size the memory of the pod's shim.
func (r *runner) memRound(b *Backend, round int) (singles []Mem, pods map[int]Mem, retErr error) {
	var all []*running
	var groups []string
	defer func() {
		if err := r.stop(all); err != nil && retErr == nil {
			retErr = err
		}
		if err := r.waitNoShims(20 * time.Second); err != nil && retErr == nil {
			retErr = err
		}
		// containerd's pkg/shim removes the socket named after the shim's first
		// container at exit, but a group's socket is named after the group
		for _, g := range groups {
			r.removeStaleSocket(b, g)
		}
	}()
	var singleRs []*running
	for i := 0; i < r.o.MemContainers; i++ {
		x, err := r.startDetached(b, r.id("mem", b), nil)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, x)
		singleRs = append(singleRs, x)
	}
	podRs := map[int][]*running{}
	for _, k := range r.o.PodSizes {
		group := fmt.Sprintf("pod%d-%s-r%d", k, b.Key, round)
		groups = append(groups, group)
		r.mu.Lock()
		r.names = append(r.names, group)
		r.mu.Unlock()
		ann := map[string]string{b.GroupAnnotation: group}
		for i := 0; i < k; i++ {
			x, err := r.startDetached(b, r.id(fmt.Sprintf("pod%d", k), b), ann)
			if err != nil {
				return nil, nil, err
			}
			all = append(all, x)
			podRs[k] = append(podRs[k], x)
		}
	}
	// Let the shims settle (their start-up garbage collected, their goroutines parked).
	select {
	case <-time.After(r.o.Settle):
	case <-r.ctx.Done():
		return nil, nil, r.ctx.Err()
	}
	pt := readProcTable()
	inits := map[int]bool{}
	for _, x := range all {
		inits[x.pid] = true
	}
	shimOf := func(x *running) (int, error) { return pt.shimOf(x.pid) }
	seen := map[int]bool{}
	for _, x := range singleRs {
		shim, err := shimOf(x)
		if err != nil {
			return nil, nil, err
		}
		if seen[shim] {
			return nil, nil, fmt.Errorf("%s: ungrouped containers share shim %d", b.Key, shim)
		}
		seen[shim] = true
		m, err := memOf(pt.overhead(shim, inits))
		if err != nil {
			return nil, nil, err
		}
		singles = append(singles, m)
	}
	pods = map[int]Mem{}
	for _, k := range r.o.PodSizes {
		var shim int
		for _, x := range podRs[k] {
			s, err := shimOf(x)
			if err != nil {
				return nil, nil, err
			}
			if shim != 0 && s != shim {
				return nil, nil, fmt.Errorf("%s: the containers of pod %d are served by shims %d and %d, want one", b.Key, k, shim, s)
			}
			if seen[s] {
				return nil, nil, fmt.Errorf("%s: pod %d shares shim %d with another container", b.Key, k, s)
			}
			shim = s
		}
		seen[shim] = true
		m, err := memOf(pt.overhead(shim, inits))
		if err != nil {
			return nil, nil, err
		}
		pods[k] = m
	}
	return singles, pods, nil
}

func (r *runner) measureMemory() error {
	const g = "2. memory"
	frss := r.rep.figure(g, "mem-rss", fmt.Sprintf("shim RSS per container (%d containers, a shim each)", r.o.MemContainers), "MiB", false)
	fpss := r.rep.figure(g, "mem-pss", fmt.Sprintf("shim PSS per container (%d containers, a shim each)", r.o.MemContainers), "MiB", false)
	prss := map[int]*Figure{}
	ppss := map[int]*Figure{}
	for _, k := range r.o.PodSizes {
		prss[k] = r.rep.figure(g, fmt.Sprintf("pod%d-rss", k), fmt.Sprintf("shim RSS per container, pod of %d (one shim)", k), "MiB", false)
		ppss[k] = r.rep.figure(g, fmt.Sprintf("pod%d-pss", k), fmt.Sprintf("shim PSS per container, pod of %d (one shim)", k), "MiB", false)
	}
	figs := []*Figure{frss, fpss}
	for _, k := range r.o.PodSizes {
		figs = append(figs, prss[k], ppss[k])
	}
	st := r.newStep(figs...)
	for i := 0; i < r.o.MemRounds; i++ {
		for _, b := range st.backends(i) {
			r.progress("memory: round %d/%d: %s", i+1, r.o.MemRounds, b.Key)
			if err := r.before(b); err != nil {
				return err
			}
			singles, pods, err := r.memRound(b, i)
			if err != nil {
				st.fail(b, err)
				continue
			}
			for _, m := range singles {
				frss.add(b, mib(m.RSS))
				fpss.add(b, mib(m.PSS))
			}
			for k, m := range pods {
				prss[k].add(b, mib(m.RSS)/float64(k))
				ppss[k].add(b, mib(m.PSS)/float64(k))
			}
		}
	}
	return nil
}

// ---- 3. churn ------------------------------------------------------------------------

func (r *runner) churnRound(b *Backend) (float64, error) {
	ids := make(chan string, r.o.Churn)
	for i := 0; i < r.o.Churn; i++ {
		ids <- r.id("churn", b)
	}
	close(ids)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < r.o.InFlight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				mu.Lock()
				failed := firstErr != nil
				mu.Unlock()
				if failed {
					continue
				}
				if _, err := r.lifecycle(b, id, nil); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(r.o.Churn) / d.Seconds(), nil
}

func (r *runner) measureChurn() error {
	f := r.rep.figure("3. churn", "churn",
		fmt.Sprintf("churn: %d containers created, started, waited, deleted, %d in flight", r.o.Churn, r.o.InFlight),
		"containers/s", true)
	st := r.newStep(f)
	for i := 0; i < r.o.ChurnRounds; i++ {
		for _, b := range st.backends(i) {
			r.progress("churn: round %d/%d: %s", i+1, r.o.ChurnRounds, b.Key)
			if err := r.before(b); err != nil {
				return err
			}
			v, err := r.churnRound(b)
			if err != nil {
				st.fail(b, err)
				continue
			}
			f.add(b, v)
		}
	}
	return nil
}

// ---- 4. exec -------------------------------------------------------------------------

func (r *runner) measureExec() error {
	const g = "4. exec"
	fctr := r.rep.figure(g, "exec-ctr", "`ctr task exec ID echo hi` wall time", "ms", false)
	fse := r.rep.figure(g, "exec-client", "Go client exec: start → exit", "ms", false)
	ftot := r.rep.figure(g, "exec-client-total", "Go client exec: Exec + Start + exit + Delete", "ms", false)
	st := r.newStep(fctr, fse, ftot)
	targets := map[string]*running{}
	var rs []*running
	st.keep = func() []string {
		var ids []string
		for k, x := range targets {
			if !st.bad[k] {
				ids = append(ids, x.c.ID())
			}
		}
		return ids
	}
	defer func() {
		r.stop(rs)
		r.waitNoShims(20 * time.Second)
	}()
	// The targets of the runtimes that do not need the crun host setup start without it,
	// then crun's with it, which stays for the exec samples (a container of crun 1.8.1
	// cannot be reached without it; runc's exec does not look at hugetlb).
	order := append([]*Backend(nil), r.bs...)
	sort.SliceStable(order, func(i, j int) bool { return !order[i].NeedsCrunHost && order[j].NeedsCrunHost })
	needCrun := false
	for _, b := range order {
		if err := r.before(b); err != nil {
			return err
		}
		needCrun = needCrun || b.NeedsCrunHost
		x, err := r.startDetached(b, r.id("exec", b), nil)
		if err != nil {
			st.fail(b, err)
			continue
		}
		targets[b.Key] = x
		rs = append(rs, x)
	}
	n := 0
	between := func(b *Backend) error {
		if needCrun {
			return r.crun.ensure()
		}
		return r.before(b)
	}
	sample := func(b *Backend, timed bool) error {
		x := targets[b.Key]
		n++
		out, d, err := r.ctr("task", "exec", "--exec-id", fmt.Sprintf("c%d", n), x.c.ID(), "echo", "hi")
		if err != nil {
			return err
		}
		if out != "hi\n" {
			r.lostOutput(b, "ctr task exec", x.c.ID(), out)
		}
		se, tot, err := r.clientExec(b, x, fmt.Sprintf("g%d", n))
		if err != nil {
			return err
		}
		if timed {
			fctr.add(b, ms(d))
			fse.add(b, ms(se))
			ftot.add(b, ms(tot))
		}
		return nil
	}
	for i := 0; i < r.o.Warmup; i++ {
		for _, b := range st.backends(i) {
			if err := sample(b, false); err != nil {
				st.fail(b, err)
			}
		}
	}
	for i := 0; i < r.o.Runs; i++ {
		r.progress("exec: round %d/%d", i+1, r.o.Runs)
		for _, b := range st.backends(i) {
			if err := r.ctx.Err(); err != nil {
				return err
			}
			if err := between(b); err != nil {
				return err
			}
			if err := sample(b, true); err != nil {
				st.fail(b, err)
			}
		}
	}
	return nil
}

// clientExec runs `echo hi` in x through the Go client and returns the time from Start
// to the exit status, and the time of the whole Exec, Start, exit, Delete.
func (r *runner) clientExec(b *Backend, x *running, execID string) (startToExit, total time.Duration, err error) {
	ctx, cancel := context.WithTimeout(withNS(r.ctx, r.env), r.o.CallTimeout)
	defer cancel()
	spec, err := x.c.Spec(ctx)
	if err != nil {
		return 0, 0, err
	}
	ps := *spec.Process
	ps.Args = []string{"echo", "hi"}
	ps.Terminal = false
	var out harness.SyncBuffer
	t0 := time.Now()
	p, err := x.task.Exec(ctx, execID, &ps, cio.NewCreator(cio.WithStreams(nil, &out, io.Discard)))
	if err != nil {
		return 0, 0, err
	}
	ch, err := p.Wait(ctx)
	if err != nil {
		p.Delete(ctx, client.WithProcessKill)
		return 0, 0, err
	}
	t1 := time.Now()
	if err := p.Start(ctx); err != nil {
		p.Delete(ctx, client.WithProcessKill)
		return 0, 0, err
	}
	var st client.ExitStatus
	select {
	case st = <-ch:
	case <-ctx.Done():
		p.Delete(context.Background(), client.WithProcessKill)
		return 0, 0, ctx.Err()
	}
	t2 := time.Now()
	if _, err := p.Delete(ctx); err != nil {
		return 0, 0, err
	}
	t3 := time.Now()
	if code, _, err := st.Result(); err != nil || code != 0 {
		return 0, 0, fmt.Errorf("exec %s: exit %d %v", execID, code, err)
	}
	if s := out.String(); s != "hi\n" {
		r.lostOutput(b, "Go client exec", x.c.ID()+"/"+execID, s)
	}
	return t2.Sub(t1), t3.Sub(t0), nil
}

// ---- helpers -------------------------------------------------------------------------

// lostOutput records a run whose stdout was not "hi\n". Under load containerd's client can
// give up opening its end of the stdout fifo (Task.Delete cancels the fifo opening) before
// the output arrives, so a missing line is counted and reported, not fatal.
func (r *runner) lostOutput(b *Backend, what, id, got string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost == nil {
		r.lost = map[string][]string{}
	}
	r.lost[b.Key] = append(r.lost[b.Key], fmt.Sprintf("%s %s: %q", what, id, got))
	r.progress("%s: %s %s: stdout %q, want \"hi\\n\"", b.Key, what, id, got)
}

func (r *runner) lostNotes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.all {
		if n := r.leftShims[b.Key]; n > 0 {
			out = append(out, fmt.Sprintf("%s: the failed probe left its shim process running (containerd could not shut it down); the bench killed it and removed its socket.", b.Name))
		}
	}
	var socks []string
	for _, b := range r.all {
		if n := r.staleSockets[b.Key]; n > 0 {
			socks = append(socks, fmt.Sprintf("%s %d", b.Name, n))
		}
	}
	if len(socks) > 0 {
		out = append(out, fmt.Sprintf("The sockets of grouped pods' shims were left in /run/containerd/s after the shims exited (%s): containerd's pkg/shim removes the socket named after the shim's first container, not the group's. The bench removed them.", strings.Join(socks, ", ")))
	}
	for _, b := range r.all {
		if l := r.lost[b.Key]; len(l) > 0 {
			out = append(out, fmt.Sprintf("%s: %d runs lost their stdout (%s)", b.Name, len(l), strings.Join(l, "; ")))
		}
	}
	return out
}

// logNotes reports what containerd's log says about the runtimes that bears on the figures.
func logNotes(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var cg int
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `msg="loading cgroup for`) && strings.Contains(l, "runtime="+harness.RuncRuntimeType) {
			cg++
		}
	}
	var out []string
	if cg > 0 {
		out = append(out, fmt.Sprintf("The runc shim could not load the cgroup of %d containers (`loading cgroup for PID: cgroups: cannot find cgroup mount destination`), so it ran them without its OOM watch: on this host the baseline does less per container than the lxcri shim, which loads every container's cgroup.", cg))
	}
	return out
}

// otherDaemons counts the containerd processes of the host other than ours.
func otherDaemons(ours int) int {
	n := 0
	pt := readProcTable()
	for pid, a := range pt.argv0 {
		if a == "containerd" && pid != ours {
			n++
		}
	}
	return n
}

func withNS(ctx context.Context, env *harness.Env) context.Context {
	return namespaces.WithNamespace(ctx, env.Namespace)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b uint64) float64       { return float64(b) / (1 << 20) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	var keep []string
	for _, l := range lines {
		if strings.Contains(l, "level=warning") && strings.Contains(l, "cgroup v1") {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// wrapContainerd points LXCRI_TOOLS_DIR at a folder whose containerd runs the real one
// at the given log level (the harness starts it with --log-level debug, which also makes
// containerd start every shim with -debug), the other tools being links to the real ones.
// The returned function restores LXCRI_TOOLS_DIR; the folder is removed by tb's cleanup.
func wrapContainerd(tb testing.TB, level string) (restore func(), err error) {
	real := harness.ToolsDir(tb)
	dir, err := os.MkdirTemp("", "lxcri-bench-tools-")
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	ents, err := os.ReadDir(real)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Name() == "containerd" {
			continue
		}
		if err := os.Symlink(filepath.Join(real, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return nil, err
		}
	}
	script := fmt.Sprintf(`#!/bin/bash
# lxcri-bench: containerd at log level %[1]s instead of the harness's debug
a=("$@")
for ((i = 0; i < ${#a[@]}; i++)); do
  [ "${a[$i]}" = --log-level ] && a[$((i + 1))]=%[1]s
done
exec %[2]q "${a[@]}"
`, level, filepath.Join(real, "containerd"))
	if err := os.WriteFile(filepath.Join(dir, "containerd"), []byte(script), 0o755); err != nil {
		return nil, err
	}
	old, had := os.LookupEnv("LXCRI_TOOLS_DIR")
	os.Setenv("LXCRI_TOOLS_DIR", dir)
	return func() {
		if had {
			os.Setenv("LXCRI_TOOLS_DIR", old)
		} else {
			os.Unsetenv("LXCRI_TOOLS_DIR")
		}
	}, nil
}

// removeNamespaceCgroups removes the (empty) cgroups named after the run's namespace that
// the runtimes leave behind as the parents of the containers' cgroups.
func removeNamespaceCgroups(tb testing.TB, ns string) {
	dirs := harness.CgroupsNamed(ns)
	for _, d := range dirs {
		var sub []string
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		sort.Slice(sub, func(i, j int) bool { return len(sub[i]) > len(sub[j]) })
		for _, s := range sub {
			if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
				tb.Logf("bench: cleanup: rmdir %s: %v", s, err)
			}
		}
	}
}

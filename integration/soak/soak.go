//go:build linux

// Package soak runs many container lifecycles through the lxcri shim on a private
// containerd and counts what they leave behind.
//
// One run is one backend in one shim mode. A cycle is create, start, exec (`echo`, output
// checked), kill (SIGKILL), wait, delete of the task and of the container, through
// containerd's Go client; Options.InFlight cycles run at once. In the grouped mode every
// container carries the same io.kubernetes.cri.sandbox-id annotation, so one long-lived
// shim serves them all beside a sentinel container that stays up for the run (as a pod's
// sandbox does); in the single mode each container has a shim of its own.
//
// Counted after the run, against a snapshot taken before it: mounts, cgroups in every
// mounted hierarchy (each cgroup v1 hierarchy and the cgroup2 tree), LXC containers,
// container state files, processes (container processes, LXC monitors, helpers, runtime
// CLIs), shim processes, shim sockets, fifos and ZFS datasets (when a pool is configured).
// In the shim: goroutines (read from the shim's debug endpoint, which it serves only
// when containerd runs at debug level; see shim.RegisterDebugPlugin) and open fds
// (/proc/<pid>/fd), with the grouped shim's RSS at start and end. In the single mode the
// goroutines and fds of each shim are read after its container started and again after
// its exec ended, and the largest growth is reported.
package soak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/lxcri/lxcri/integration/harness"
)

// Modes of grouping containers into shims.
const (
	Grouped = "grouped"
	Single  = "single"
)

// GroupAnnotation is the grouping containerd's CRI plugin gives the containers of a pod.
const GroupAnnotation = "io.kubernetes.cri.sandbox-id"

// Backend is one lxcri configuration under soak.
type Backend struct {
	Name   string
	Config string // lxcri TOML, without state_dir
}

// Backends lists the backends a soak can run: the lxc backend and the crun backend
// driving runc.
func Backends() []Backend {
	return []Backend{
		{Name: "lxc", Config: "backend = \"lxc\"\n"},
		{Name: "crun-runc", Config: "backend = \"crun\"\n[crun]\nbinary = \"runc\"\n"},
	}
}

// Options of one run.
type Options struct {
	Backend  Backend
	Mode     string // Grouped or Single
	Cycles   int
	InFlight int
	// Pool is a ZFS pool to put the containers' root filesystems on ("" for none).
	Pool string
	// Datasets lists the pool's datasets (for the leak count); needed with Pool.
	Datasets func() []string
	// CallTimeout bounds one cycle.
	CallTimeout time.Duration
	// Logf receives progress lines.
	Logf func(format string, args ...any)
}

// Result of one run.
type Result struct {
	Backend, Mode string
	Cycles        int // completed without error
	InFlight      int
	Duration      time.Duration
	Errors        []string
	Leaks         Leaks
	// Shim figures: Start and End of the grouped shim (after a warm-up and once the last
	// cycle's container is deleted); in the single mode the medians over the shims of
	// their reading after start (Start) and after exec (End).
	ShimStart, ShimEnd ShimSample
	// Growth is the goroutines and fds a shim holds above its start reading once quiet.
	GoroutineGrowth, FDGrowth int
	// Notes hold the profiles and fd lists behind a leak.
	Notes []string
}

// OK tells whether the run completed every cycle and leaked nothing.
func (r *Result) OK() bool {
	return len(r.Errors) == 0 && r.Cycles > 0 && r.Leaks.Total() == 0 && r.GoroutineGrowth == 0 && r.FDGrowth == 0
}

// warmup cycles run in the grouped shim before its start reading, so that what the shim
// makes once (ttrpc server goroutines, the exit watcher, the event queue) is in the
// baseline.
const warmup = 8

// quiet bounds how long a shim may take to end a deleted task's goroutines and fds.
const quiet = 15 * time.Second

// Run soaks one backend in one mode on a private containerd it starts (and tb cleans up).
func Run(ctx context.Context, tb testing.TB, o Options) (*Result, error) {
	tb.Helper()
	if o.Cycles < 1 || o.InFlight < 1 {
		return nil, fmt.Errorf("soak: cycles (%d) and in-flight (%d) must be at least 1", o.Cycles, o.InFlight)
	}
	if o.Mode != Grouped && o.Mode != Single {
		return nil, fmt.Errorf("soak: mode %q is neither %s nor %s", o.Mode, Grouped, Single)
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 2 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	stateRoot, err := os.MkdirTemp("/run", "lxcri-soak-")
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { os.RemoveAll(stateRoot) })
	stateDir := filepath.Join(stateRoot, "state")
	cfg := fmt.Sprintf("state_dir = %q\n%s", stateDir, o.Backend.Config)
	datasets := o.Datasets
	if o.Pool != "" {
		parent := o.Pool + "/lxcri"
		cfg += fmt.Sprintf("[zfs]\ndataset = %q\n", parent)
		// lxcri makes the configured parent when it is missing and keeps it: it is the
		// operator's, not a container's.
		datasets = func() []string {
			var out []string
			for _, d := range o.Datasets() {
				if d != parent {
					out = append(out, d)
				}
			}
			return out
		}
	}
	cfgPath := filepath.Join(stateRoot, "host.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	prefix := "soak-" + randHex(3) + "-"
	ns := "soak-" + randHex(4)
	env := harness.Start(tb,
		harness.WithNamespace(ns),
		harness.WithDaemonEnv("LXCRI_CONFIG="+cfgPath),
		harness.WithTimeout(2*time.Minute))
	// Runs before the harness's cleanup; the namespace's own cgroup level is containerd's
	// clients' (as with the runc shim) and goes once the run is over.
	tb.Cleanup(func() {
		for _, cg := range harness.CgroupsNamed(ns) {
			if filepath.Base(cg) == ns {
				syscall.Rmdir(cg)
			}
		}
	})
	r := &runner{
		o: o, env: env, cl: env.Client(),
		sc:  &scope{env: env, ns: ns, prefix: prefix, stateDir: stateDir, fifoDir: filepath.Join(env.Root, "fifo"), pool: o.Pool},
		res: &Result{Backend: o.Backend.Name, Mode: o.Mode, InFlight: o.InFlight},
	}
	if err := os.MkdirAll(r.sc.fifoDir, 0o700); err != nil {
		return nil, err
	}
	r.img, err = r.cl.GetImage(env.Context(), env.Image)
	if err != nil {
		return nil, fmt.Errorf("soak: image %s: %w", env.Image, err)
	}
	if err := r.img.Unpack(env.Context(), ""); err != nil {
		return nil, fmt.Errorf("soak: unpack %s: %w", env.Image, err)
	}
	before := r.sc.snapshot(datasets)
	t0 := time.Now()
	if o.Mode == Grouped {
		err = r.grouped(ctx)
	} else {
		err = r.single(ctx)
	}
	r.res.Duration = time.Since(t0)
	if err != nil {
		return r.res, err
	}
	// The last shim leaves once its last task is deleted; what is still there after that
	// is counted (a leak must not hide behind a shim that is slow to go).
	r.waitShimsGone(quiet)
	after := r.sc.snapshot(datasets)
	r.res.Leaks = leaks(before, after)
	if r.res.GoroutineGrowth > 0 {
		r.res.Leaks.add("goroutines", fmt.Sprintf("%d goroutines above the start reading", r.res.GoroutineGrowth))
	}
	if r.res.FDGrowth > 0 {
		r.res.Leaks.add("fds", fmt.Sprintf("%d fds above the start reading", r.res.FDGrowth))
	}
	return r.res, nil
}

type runner struct {
	o   Options
	env *harness.Env
	cl  *client.Client
	img client.Image
	sc  *scope
	res *Result

	mu   sync.Mutex
	seq  int
	done int
	// single mode: per-shim readings
	starts, ends []ShimSample
	gGrowth      int
	fGrowth      int
}

func (r *runner) id() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	return fmt.Sprintf("%sc%d", r.sc.prefix, r.seq)
}

func (r *runner) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Errors = append(r.res.Errors, fmt.Sprintf(format, args...))
}

func (r *runner) errCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.res.Errors)
}

// maxErrors stops a run that fails over and over: its leaks are counted all the same.
const maxErrors = 10

// cycles runs n cycles, InFlight at once; each calls f with a fresh id.
func (r *runner) cycles(ctx context.Context, n int, f func(ctx context.Context, id string) error) {
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < r.o.InFlight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				id := r.id()
				cctx, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
				err := f(cctx, id)
				cancel()
				if err != nil {
					r.fail("cycle %s: %v", id, err)
					continue
				}
				r.mu.Lock()
				r.done++
				d := r.done
				r.mu.Unlock()
				if d%50 == 0 {
					r.o.Logf("soak %s/%s: %d cycles done", r.o.Backend.Name, r.o.Mode, d)
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil && r.errCount() < maxErrors; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
}

// ---- one container ---------------------------------------------------------------------

// container is one started container of a cycle.
type container struct {
	c    client.Container
	task client.Task
	exit <-chan client.ExitStatus
	out  *harness.SyncBuffer
}

func (r *runner) ioCreator(out io.Writer) cio.Creator {
	return cio.NewCreator(cio.WithStreams(nil, out, out), cio.WithFIFODir(r.sc.fifoDir))
}

// create makes and starts a container running sleep, in group (none: "").
func (r *runner) create(ctx context.Context, id, group string) (_ *container, retErr error) {
	ctx = r.nsCtx(ctx)
	specOpts := []oci.SpecOpts{oci.WithImageConfig(r.img), oci.WithProcessArgs("sleep", "3600")}
	if group != "" {
		specOpts = append(specOpts, oci.WithAnnotations(map[string]string{GroupAnnotation: group}))
	}
	c, err := r.cl.NewContainer(ctx, id,
		client.WithImage(r.img),
		client.WithNewSnapshot(id+"-snap", r.img),
		client.WithRuntime(harness.RuntimeType, &runtimeoptions.Options{}),
		client.WithNewSpec(specOpts...),
	)
	if err != nil {
		return nil, fmt.Errorf("new container: %w", err)
	}
	x := &container{c: c, out: &harness.SyncBuffer{}}
	defer func() {
		if retErr != nil {
			r.remove(x)
		}
	}()
	if x.task, err = c.NewTask(ctx, r.ioCreator(x.out)); err != nil {
		return x, fmt.Errorf("create: %w", err)
	}
	if x.exit, err = x.task.Wait(ctx); err != nil {
		return x, fmt.Errorf("wait: %w", err)
	}
	if err := x.task.Start(ctx); err != nil {
		return x, fmt.Errorf("start: %w", err)
	}
	return x, nil
}

// exec runs `echo <id>` in x and checks its exit status and output.
func (r *runner) exec(ctx context.Context, x *container, execID string) error {
	ctx = r.nsCtx(ctx)
	spec, err := x.c.Spec(ctx)
	if err != nil {
		return err
	}
	pspec := *spec.Process
	pspec.Args = []string{"echo", execID}
	pspec.Terminal = false
	var out harness.SyncBuffer
	p, err := x.task.Exec(ctx, execID, &pspec, r.ioCreator(&out))
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	ch, err := p.Wait(ctx)
	if err != nil {
		p.Delete(ctx, client.WithProcessKill)
		return fmt.Errorf("exec wait: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		p.Delete(ctx, client.WithProcessKill)
		return fmt.Errorf("exec start: %w", err)
	}
	var st client.ExitStatus
	select {
	case st = <-ch:
	case <-ctx.Done():
		p.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return fmt.Errorf("exec: no exit: %w", ctx.Err())
	}
	// Delete waits for the exec's output to be copied (cio's Wait).
	if _, err := p.Delete(ctx); err != nil {
		return fmt.Errorf("exec delete: %w", err)
	}
	if code, _, err := st.Result(); err != nil || code != 0 {
		return fmt.Errorf("exec exited %d (%v)", code, err)
	}
	if got := out.String(); got != execID+"\n" {
		return fmt.Errorf("exec output %q, want %q", got, execID+"\n")
	}
	return nil
}

// stop kills x's init, waits for its exit and deletes the task and the container.
func (r *runner) stop(ctx context.Context, x *container) error {
	ctx = r.nsCtx(ctx)
	if err := x.task.Kill(ctx, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	var st client.ExitStatus
	select {
	case st = <-x.exit:
	case <-ctx.Done():
		return fmt.Errorf("no exit after SIGKILL: %w", ctx.Err())
	}
	if code, _, err := st.Result(); err != nil || code != 128+uint32(syscall.SIGKILL) {
		return fmt.Errorf("init exited %d (%v), want %d", code, err, 128+int(syscall.SIGKILL))
	}
	if _, err := x.task.Delete(ctx); err != nil {
		return fmt.Errorf("delete task: %w", err)
	}
	x.task = nil
	if err := x.c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		return fmt.Errorf("delete container: %w", err)
	}
	x.c = nil
	return nil
}

// remove force-removes what is left of x after a failure.
func (r *runner) remove(x *container) {
	ctx, cancel := context.WithTimeout(r.nsCtx(context.Background()), 30*time.Second)
	defer cancel()
	if x.task != nil {
		x.task.Delete(ctx, client.WithProcessKill)
	}
	if x.c != nil {
		x.c.Delete(ctx, client.WithSnapshotCleanup)
	}
}

func (r *runner) nsCtx(ctx context.Context) context.Context {
	return withNamespace(ctx, r.env)
}

// sockets records the shim socket and debug socket containerd's manager would put group
// under (the folder of the address in the task's bootstrap.json), for the leak count.
func (r *runner) sockets(id, group string) (debug string, err error) {
	b, err := os.ReadFile(filepath.Join(r.env.Root, "state", "io.containerd.runtime.v2.task", r.sc.ns, id, "bootstrap.json"))
	if err != nil {
		return "", fmt.Errorf("shim address of %s: %w", id, err)
	}
	var boot struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(b, &boot); err != nil || !strings.HasPrefix(boot.Address, "unix://") {
		return "", fmt.Errorf("shim address of %s: bootstrap.json holds %q (%v)", id, b, err)
	}
	dir := filepath.Dir(strings.TrimPrefix(boot.Address, "unix://"))
	main, err := socketAddress(r.sc.ns, dir, r.env.Socket, group, false)
	if err != nil {
		return "", err
	}
	if debug, err = socketAddress(r.sc.ns, dir, r.env.Socket, group, true); err != nil {
		return "", err
	}
	r.mu.Lock()
	r.sc.sockets = append(r.sc.sockets, main, debug)
	r.mu.Unlock()
	return debug, nil
}

func (r *runner) probeOf(ctx context.Context, x *container, id, group string) (*shimProbe, error) {
	pid, err := shimOf(int(x.task.Pid()))
	if err != nil {
		return nil, err
	}
	debug, err := r.sockets(id, group)
	if err != nil {
		return nil, err
	}
	return newShimProbe(pid, debug), nil
}

// ---- modes -----------------------------------------------------------------------------

func (r *runner) cycle(ctx context.Context, id, group string, between func(x *container) error) error {
	x, err := r.create(ctx, id, group)
	if err != nil {
		return err
	}
	if err := r.exec(ctx, x, "x"+id); err != nil {
		r.remove(x)
		return err
	}
	if between != nil {
		if err := between(x); err != nil {
			r.remove(x)
			return err
		}
	}
	if err := r.stop(ctx, x); err != nil {
		r.remove(x)
		return err
	}
	return nil
}

func (r *runner) grouped(ctx context.Context) error {
	group := r.sc.prefix + "pod"
	sentinel, err := r.create(ctx, r.sc.prefix+"sentinel", group)
	if err != nil {
		return fmt.Errorf("soak: sentinel: %w", err)
	}
	defer func() {
		if sentinel.c != nil {
			r.remove(sentinel)
		}
	}()
	probe, err := r.probeOf(ctx, sentinel, r.sc.prefix+"sentinel", group)
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	defer probe.close()
	fresh, _, err := probe.sample()
	if err != nil {
		return err
	}
	body := func(ctx context.Context, id string) error { return r.cycle(ctx, id, group, nil) }
	r.cycles(ctx, warmup, body)
	if r.errCount() > 0 {
		return nil
	}
	base, baseProf, err := probe.floor(10)
	if err != nil {
		return err
	}
	base.RSS = fresh.RSS
	r.mu.Lock()
	r.done = 0
	r.mu.Unlock()
	r.cycles(ctx, r.o.Cycles, body)
	r.res.Cycles = r.done
	end, endProf, err := probe.settle(base, quiet)
	if err != nil {
		return err
	}
	r.res.ShimStart, r.res.ShimEnd = base, end
	if end.Goroutines > base.Goroutines {
		r.res.GoroutineGrowth = end.Goroutines - base.Goroutines
		r.res.Notes = append(r.res.Notes, "grouped shim goroutines at start:\n"+baseProf, "grouped shim goroutines at end:\n"+endProf)
	}
	if end.FDs > base.FDs {
		r.res.FDGrowth = end.FDs - base.FDs
		r.res.Notes = append(r.res.Notes, "grouped shim fds at end:\n  "+strings.Join(fdTargets(probe.pid), "\n  "))
	}
	if err := r.stop(ctx, sentinel); err != nil {
		r.fail("sentinel: %v", err)
	}
	return nil
}

func (r *runner) single(ctx context.Context) error {
	body := func(ctx context.Context, id string) error {
		var probe *shimProbe
		var start ShimSample
		var startProf string
		return r.cycle(ctx, id, "", func(x *container) error {
			// The exec ran between the two readings: what it left in the shim shows as
			// growth. The first reading is taken after the exec too, once, so that lazily
			// made state of a first exec is not counted.
			var err error
			if probe, err = r.probeOf(ctx, x, id, id); err != nil {
				return err
			}
			defer probe.close()
			if start, startProf, err = probe.floor(3); err != nil {
				return err
			}
			startFDs := fdTargets(probe.pid)
			if err := r.exec(ctx, x, "y"+id); err != nil {
				return err
			}
			end, endProf, err := probe.settle(start, quiet)
			if err != nil {
				return err
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			r.starts = append(r.starts, start)
			r.ends = append(r.ends, end)
			if g := end.Goroutines - start.Goroutines; g > r.gGrowth {
				r.gGrowth = g
				r.res.Notes = append(r.res.Notes, fmt.Sprintf("shim of %s goroutines after the first exec:\n%s\nafter the second:\n%s", id, startProf, endProf))
			}
			if f := end.FDs - start.FDs; f > r.fGrowth {
				r.fGrowth = f
				r.res.Notes = append(r.res.Notes, fmt.Sprintf("shim of %s fds after the first exec:\n  %s\nafter the second:\n  %s",
					id, strings.Join(startFDs, "\n  "), strings.Join(fdTargets(probe.pid), "\n  ")))
			}
			return nil
		})
	}
	r.cycles(ctx, r.o.Cycles, body)
	r.res.Cycles = r.done
	r.res.ShimStart, r.res.ShimEnd = median(r.starts), median(r.ends)
	r.res.GoroutineGrowth, r.res.FDGrowth = r.gGrowth, r.fGrowth
	return nil
}

// waitShimsGone waits up to d for this run's shims to exit.
func (r *runner) waitShimsGone(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		n := 0
		for _, p := range harness.Procs() {
			if p.Name() == harness.ShimBinary && strings.Contains(p.Cmdline(), r.env.Socket) {
				n++
			}
		}
		if n == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func median(s []ShimSample) ShimSample {
	if len(s) == 0 {
		return ShimSample{}
	}
	pick := func(get func(ShimSample) uint64) uint64 {
		v := make([]uint64, len(s))
		for i, x := range s {
			v[i] = get(x)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	return ShimSample{
		Goroutines: int(pick(func(x ShimSample) uint64 { return uint64(x.Goroutines) })),
		FDs:        int(pick(func(x ShimSample) uint64 { return uint64(x.FDs) })),
		RSS:        pick(func(x ShimSample) uint64 { return x.RSS }),
	}
}

// ---- report ----------------------------------------------------------------------------

// WriteTable prints one row per run: cycles, time, leaks by kind and the shim figures.
func WriteTable(w io.Writer, rs []*Result) {
	fmt.Fprintf(w, "%-10s %-8s %7s %6s %8s", "backend", "mode", "cycles", "flight", "time")
	for _, k := range LeakKinds {
		fmt.Fprintf(w, " %s", short(k))
	}
	fmt.Fprintf(w, " %11s %11s %9s %9s %s\n", "rss start", "rss end", "gor s/e", "fds s/e", "errors")
	for _, r := range rs {
		fmt.Fprintf(w, "%-10s %-8s %7d %6d %8s", r.Backend, r.Mode, r.Cycles, r.InFlight, r.Duration.Round(100*time.Millisecond))
		for _, k := range LeakKinds {
			fmt.Fprintf(w, " %*d", len(short(k)), len(r.Leaks[k]))
		}
		fmt.Fprintf(w, " %8.1f MiB %7.1f MiB %9s %9s %d\n",
			float64(r.ShimStart.RSS)/(1<<20), float64(r.ShimEnd.RSS)/(1<<20),
			fmt.Sprintf("%d/%d", r.ShimStart.Goroutines, r.ShimEnd.Goroutines),
			fmt.Sprintf("%d/%d", r.ShimStart.FDs, r.ShimEnd.FDs), len(r.Errors))
	}
	fmt.Fprintf(w, "leak columns: %s\n", legend())
}

var shortNames = map[string]string{
	"mounts": "mnt", "cgroups": "cg", "lxc containers": "lxc", "container state": "state",
	"processes": "proc", "shims": "shim", "sockets": "sock", "fifos": "fifo",
	"datasets": "zfs", "goroutines": "gor", "fds": "fd",
}

func short(k string) string { return shortNames[k] }

func legend() string {
	var parts []string
	for _, k := range LeakKinds {
		parts = append(parts, short(k)+"="+k)
	}
	return strings.Join(parts, ", ")
}

// Describe lists every leaked thing and error of r.
func (r *Result) Describe() string {
	var b strings.Builder
	for _, k := range LeakKinds {
		for _, x := range r.Leaks[k] {
			fmt.Fprintf(&b, "leaked %s: %s\n", k, x)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	return b.String()
}

var errNoCycles = errors.New("no cycle completed")

// Err summarises a failed run.
func (r *Result) Err() error {
	switch {
	case r.OK():
		return nil
	case r.Cycles == 0 && len(r.Errors) == 0:
		return errNoCycles
	}
	return fmt.Errorf("%s/%s: %d of the cycles failed, %d things leaked", r.Backend, r.Mode, len(r.Errors), r.Leaks.Total())
}

// Package fake is a runtime.Backend that runs nothing. A test decides when a process
// exits, which calls fail or panic and how many OOM kills the kernel "counted", so that the
// task service's state machine, event order and error paths can be tested without root,
// LXC or a runtime CLI.
package fake

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/lxcri/lxcri/runtime"
)

// Log records, in order, what the backend was asked to do; a test may add the events its
// publisher sees to the same Log, to check one against the other.
type Log struct {
	mu    sync.Mutex
	lines []string
}

// Add appends a line.
func (l *Log) Add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

// Lines returns a copy of what was logged so far.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Backend makes fake containers. Its zero value is not usable: use New.
type Backend struct {
	log *Log

	mu         sync.Mutex
	containers map[string]*Container
	fail       map[string]error
	panics     map[string]bool
	before     map[string]func()
	nextPid    int
	features   *features.Features
	needs      runtime.Needs
}

// New returns a backend that logs to l (which may be shared with a test's publisher).
func New(l *Log) *Backend {
	return &Backend{log: l, containers: map[string]*Container{}, fail: map[string]error{}, panics: map[string]bool{}, before: map[string]func(){}, nextPid: 1000}
}

// Fail makes every later call of op return err (nil clears it). The ops are "create",
// "start", "exec", "exec-start", "kill", "kill-all", "pause", "resume", "pids", "stats",
// "update", "checkpoint", "delete" and "cleanup".
func (b *Backend) Fail(op string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.fail, op)
		return
	}
	b.fail[op] = err
}

// Panic makes every later call of op panic, as a backend bug would.
func (b *Backend) Panic(op string) {
	b.mu.Lock()
	b.panics[op] = true
	b.mu.Unlock()
}

// Before makes every later call of op run f first (inside the call, before it returns),
// e.g. to end a process while its Start is under way.
func (b *Backend) Before(op string, f func()) {
	b.mu.Lock()
	b.before[op] = f
	b.mu.Unlock()
}

// call logs op and returns the error a test set for it (or panics when asked to).
func (b *Backend) call(op, detail string) error {
	b.mu.Lock()
	err, p, f := b.fail[op], b.panics[op], b.before[op]
	b.mu.Unlock()
	if detail != "" {
		b.log.Add(op + " " + detail)
	} else {
		b.log.Add(op)
	}
	if f != nil {
		f()
	}
	if p {
		panic("fake: " + op + " panicked")
	}
	return err
}

func (b *Backend) pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextPid++
	return b.nextPid
}

// Container returns the container made for id, nil if none.
func (b *Backend) Container(id string) *Container {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.containers[id]
}

func (b *Backend) Name() string { return "fake" }

// SetNeeds sets what Needs reports (default: nothing of the host).
func (b *Backend) SetNeeds(n runtime.Needs) {
	b.mu.Lock()
	b.needs = n
	b.mu.Unlock()
}

// Needs reports what SetNeeds set.
func (b *Backend) Needs() runtime.Needs {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.needs
}

// SetFeatures sets what Features reports; without it Features fails.
func (b *Backend) SetFeatures(f *features.Features) {
	b.mu.Lock()
	b.features = f
	b.mu.Unlock()
}

// Features reports what SetFeatures set.
func (b *Backend) Features(ctx context.Context) (*features.Features, error) {
	if err := b.call("features", ""); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.features == nil {
		return nil, fmt.Errorf("fake has no features: %w", errdefs.ErrNotImplemented)
	}
	return b.features, nil
}

func (b *Backend) Create(ctx context.Context, req *runtime.CreateRequest) (runtime.Container, error) {
	if err := b.call("create", req.ID); err != nil {
		return nil, err
	}
	c := &Container{b: b, id: req.ID, req: req, oom: make(chan struct{}, 16), execs: map[string]*Process{}}
	c.init = &Process{Proc: runtime.NewProc(req.ID, req.IO), c: c, init: true}
	c.init.SetPid(b.pid())
	b.mu.Lock()
	b.containers[req.ID] = c
	b.mu.Unlock()
	return c, nil
}

func (b *Backend) Cleanup(ctx context.Context, req *runtime.CleanupRequest) error {
	return b.call("cleanup", req.ID)
}

// Container is a fake container: its init "runs" from Start until the test calls Exit (or
// a kill ends it).
type Container struct {
	b    *Backend
	id   string
	req  *runtime.CreateRequest
	init *Process

	mu       sync.Mutex
	started  bool
	execs    map[string]*Process
	oom      chan struct{}
	oomCount uint64
	noCount  bool
}

func (c *Container) Init() runtime.Process { return c.init }

// Request is what Create was asked.
func (c *Container) Request() *runtime.CreateRequest { return c.req }

// Exit ends the init with status, as if it had exited by itself.
func (c *Container) Exit(status int) { c.init.SetExited(status) }

// ExecProcess returns the exec process id, nil if none.
func (c *Container) ExecProcess(id string) *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.execs[id]
}

// OOMKill counts one OOM kill and reports it on the OOM channel; with missed, the kernel
// counts it but the watch never sees it (as when the cgroup goes before it can be read).
func (c *Container) OOMKill(missed bool) {
	c.mu.Lock()
	c.oomCount++
	c.mu.Unlock()
	if !missed {
		c.oom <- struct{}{}
	}
}

// HideOOMCount makes OOMCount unknown, as for a backend that cannot read it.
func (c *Container) HideOOMCount() {
	c.mu.Lock()
	c.noCount = true
	c.mu.Unlock()
}

func (c *Container) Start(ctx context.Context) error {
	if err := c.b.call("start", c.id); err != nil {
		return err
	}
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	return nil
}

func (c *Container) Exec(ctx context.Context, req *runtime.ExecRequest) (runtime.Process, error) {
	if err := c.b.call("exec", req.ID); err != nil {
		return nil, err
	}
	p := &Process{Proc: runtime.NewProc(req.ID, req.IO), c: c}
	c.mu.Lock()
	c.execs[req.ID] = p
	c.mu.Unlock()
	return p, nil
}

// KillAll ends every process with 128+sig, unless sig is 0.
func (c *Container) KillAll(ctx context.Context, sig syscall.Signal) error {
	if err := c.b.call("kill-all", sig.String()); err != nil {
		return err
	}
	if sig == 0 {
		return nil
	}
	c.mu.Lock()
	ps := []*Process{c.init}
	for _, p := range c.execs {
		ps = append(ps, p)
	}
	c.mu.Unlock()
	for _, p := range ps {
		if p.init || p.Pid() > 0 {
			p.SetExited(128 + int(sig))
		}
	}
	return nil
}

func (c *Container) Pause(ctx context.Context) error  { return c.b.call("pause", c.id) }
func (c *Container) Resume(ctx context.Context) error { return c.b.call("resume", c.id) }

func (c *Container) Pids(ctx context.Context) ([]int, error) {
	if err := c.b.call("pids", c.id); err != nil {
		return nil, err
	}
	var pids []int
	if !c.init.Exited() {
		pids = append(pids, c.init.Pid())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.execs {
		if p.Pid() > 0 && !p.Exited() {
			pids = append(pids, p.Pid())
		}
	}
	return pids, nil
}

func (c *Container) Stats(ctx context.Context) (typeurl.Any, error) {
	if err := c.b.call("stats", c.id); err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: "fake.stats"}, nil
}

func (c *Container) Update(ctx context.Context, res *specs.LinuxResources) error {
	return c.b.call("update", c.id)
}

func (c *Container) Checkpoint(ctx context.Context, req *runtime.CheckpointRequest) error {
	return c.b.call("checkpoint", req.Path)
}

func (c *Container) OOM() <-chan struct{} { return c.oom }

// OOMCount is the number of OOM kills counted by OOMKill.
func (c *Container) OOMCount() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.oomCount, !c.noCount
}

// Delete ends an init that is still there (created, or force) with SIGKILL's status.
func (c *Container) Delete(ctx context.Context, force bool) error {
	if err := c.b.call("delete", fmt.Sprintf("%s force=%v", c.id, force)); err != nil {
		return err
	}
	if !c.init.Exited() {
		c.mu.Lock()
		started := c.started
		c.mu.Unlock()
		if started && !force {
			return fmt.Errorf("fake container %s is running: %w", c.id, errdefs.ErrFailedPrecondition)
		}
		c.init.SetExited(128 + int(syscall.SIGKILL))
	}
	return nil
}

// Process is a fake process; it ends when killed or when the test calls SetExited.
type Process struct {
	*runtime.Proc
	c    *Container
	init bool
}

func (p *Process) Start(ctx context.Context) error {
	if err := p.c.b.call("exec-start", p.ID()); err != nil {
		return err
	}
	p.SetPid(p.c.b.pid())
	return nil
}

// Kill ends the process with 128+sig, unless sig is 0.
func (p *Process) Kill(ctx context.Context, sig syscall.Signal) error {
	if err := p.c.b.call("kill", p.ID()+" "+sig.String()); err != nil {
		return err
	}
	if sig != 0 {
		p.SetExited(128 + int(sig))
	}
	return nil
}

package shim

import (
	"context"
	"sync"
	"syscall"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
)

// callLog records, in order, what the fake backend was asked to do and which events the
// service published, so that tests can check one against the other.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(s string) {
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
}

func (l *callLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

// Publish records the event's topic.
func (l *callLog) Publish(ctx context.Context, topic string, e events.Event) error {
	l.add(topic)
	return nil
}

func (l *callLog) Close() error { return nil }

// fakeBackend makes containers that run nothing: a test ends their init with exit.
type fakeBackend struct {
	log        *callLog
	mu         sync.Mutex
	containers map[string]*fakeContainer
}

func newFakeBackend(l *callLog) *fakeBackend {
	return &fakeBackend{log: l, containers: map[string]*fakeContainer{}}
}

func (b *fakeBackend) factory(ctx context.Context, cfg *runtime.Config) (runtime.Backend, error) {
	return b, nil
}

func (b *fakeBackend) Name() string { return "fake" }

func (b *fakeBackend) Create(ctx context.Context, req *runtime.CreateRequest) (runtime.Container, error) {
	c := &fakeContainer{log: b.log}
	c.init = &fakeProc{Proc: runtime.NewProc(req.ID, req.IO)}
	b.mu.Lock()
	b.containers[req.ID] = c
	b.mu.Unlock()
	return c, nil
}

func (b *fakeBackend) Cleanup(ctx context.Context, req *runtime.CleanupRequest) error { return nil }

func (b *fakeBackend) container(id string) *fakeContainer {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.containers[id]
}

type fakeContainer struct {
	log  *callLog
	init *fakeProc
}

func (c *fakeContainer) Init() runtime.Process { return c.init }

func (c *fakeContainer) Start(ctx context.Context) error {
	c.init.SetPid(4242)
	return nil
}

// exit ends the init as if it had exited with status.
func (c *fakeContainer) exit(status int) { c.init.SetExited(status) }

func (c *fakeContainer) Exec(ctx context.Context, req *runtime.ExecRequest) (runtime.Process, error) {
	return &fakeProc{Proc: runtime.NewProc(req.ID, req.IO)}, nil
}

func (c *fakeContainer) KillAll(ctx context.Context, sig syscall.Signal) error {
	c.log.add("kill-all " + sig.String())
	return nil
}

func (c *fakeContainer) Pause(ctx context.Context) error                             { return nil }
func (c *fakeContainer) Resume(ctx context.Context) error                            { return nil }
func (c *fakeContainer) Pids(ctx context.Context) ([]int, error)                     { return nil, nil }
func (c *fakeContainer) Stats(ctx context.Context) (typeurl.Any, error)              { return nil, nil }
func (c *fakeContainer) Update(ctx context.Context, res *specs.LinuxResources) error { return nil }
func (c *fakeContainer) Checkpoint(ctx context.Context, req *runtime.CheckpointRequest) error {
	return nil
}
func (c *fakeContainer) OOM() <-chan struct{} { return nil }

// Delete ends a created init, as a backend's forced delete does.
func (c *fakeContainer) Delete(ctx context.Context, force bool) error {
	if force {
		c.init.SetExited(137)
	}
	return nil
}

type fakeProc struct {
	*runtime.Proc
}

func (p *fakeProc) Start(ctx context.Context) error { return nil }

func (p *fakeProc) Kill(ctx context.Context, sig syscall.Signal) error {
	p.SetExited(128 + int(sig))
	return nil
}

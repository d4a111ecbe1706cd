package runtime

import (
	"context"
	"sync"
	"time"

	"github.com/containerd/console"
)

// Proc is the bookkeeping every backend process shares: its id, pid, stdio and exit.
// Backends embed it and add Start and Kill.
type Proc struct {
	id   string
	io   *IO
	mu   sync.Mutex
	pid  int
	exit Exit
	once sync.Once
	done chan struct{}
}

// NewProc makes the record of process id with its stdio.
func NewProc(id string, io *IO) *Proc {
	return &Proc{id: id, io: io, done: make(chan struct{})}
}

func (p *Proc) ID() string { return p.id }

// IO is the process's stdio.
func (p *Proc) IO() *IO { return p.io }

func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// SetPid records the host pid once the process runs.
func (p *Proc) SetPid(pid int) {
	p.mu.Lock()
	p.pid = pid
	p.mu.Unlock()
}

func (p *Proc) Done() <-chan struct{} { return p.done }

func (p *Proc) Exit() Exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// SetExited records the exit status, drains the output and closes Done. Only the first
// call counts.
func (p *Proc) SetExited(status int) {
	p.once.Do(func() {
		at := time.Now()
		if p.io != nil {
			p.io.Wait()
		}
		p.mu.Lock()
		p.exit = Exit{Pid: p.pid, Status: status, ExitedAt: at}
		p.mu.Unlock()
		close(p.done)
	})
}

func (p *Proc) ResizePty(ctx context.Context, ws console.WinSize) error {
	return p.io.Resize(ws)
}

func (p *Proc) CloseStdin(ctx context.Context) error {
	return p.io.CloseStdin()
}

// Delete releases the process's stdio.
func (p *Proc) Delete(ctx context.Context) error {
	if p.io == nil {
		return nil
	}
	return p.io.Close()
}

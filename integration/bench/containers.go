//go:build linux

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
)

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

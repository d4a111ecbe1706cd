//go:build linux

package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/lxcri/lxcri/integration/harness"
)

// lcTimes are the phases of one container's life through the Go client.
type lcTimes struct {
	create, start, wait, del, total time.Duration
}

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

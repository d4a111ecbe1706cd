//go:build linux

package bench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/lxcri/lxcri/integration/harness"
)

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

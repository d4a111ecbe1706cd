//go:build linux

package bench

import "time"

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

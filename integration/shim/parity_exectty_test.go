//go:build linux

package shim_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// TestExecLargeOutputWithTTY: execs on a terminal that print megabytes and exit at once
// deliver all their output, one after the other (containerd's
// TestContainerExecLargeOutputWithTTY). The terminal is asked for in the request only, as
// containerd's client does: the process spec is the container's.
func TestExecLargeOutputWithTTY(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			ctx := env.Context()
			cont, task := newTask(t, env, "ttyout", cio.NullIO, oci.WithProcessArgs("sh", "-c", "sleep inf && exit 0"))
			if err := task.Start(ctx); err != nil {
				t.Fatal(err)
			}
			spec, err := cont.Spec(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 5; i++ {
				ps := *spec.Process
				// As containerd's test: the container's process spec (no terminal), with
				// the terminal asked for in the request only.
				ps.Args = []string{"sh", "-c", `seq -s " " 1000000`}
				var out bytes.Buffer
				p, err := task.Exec(ctx, "big", &ps, cio.NewCreator(cio.WithStreams(nil, &out, nil), cio.WithTerminal))
				if err != nil {
					t.Fatalf("exec %d: %v", i, err)
				}
				ch, err := p.Wait(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := p.Start(ctx); err != nil {
					p.Delete(ctx)
					t.Fatalf("exec %d start: %v", i, err)
				}
				st := <-ch
				if code, _, err := st.Result(); err != nil || code != 0 {
					t.Errorf("exec %d: exit %d, %v", i, code, err)
				}
				p.IO().Wait()
				if _, err := p.Delete(ctx); err != nil {
					t.Fatal(err)
				}
				if s := strings.TrimSpace(out.String()); !strings.HasSuffix(s, "999999 1000000") {
					t.Fatalf("exec %d: %d bytes of output ending in %q, want it to end in 999999 1000000", i, len(s), s[max(0, len(s)-40):])
				}
			}
		})
	}
}

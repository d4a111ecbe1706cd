//go:build linux

package shim_test

import (
	"strings"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestLimits: what the spec restricts is restricted inside the container, as a user of
// runc expects.
func TestLimits(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			for _, tc := range []struct {
				name     string
				args     []string // ctr run flags, then the command
				wantCode int      // -1: any non-zero
				wantOut  string   // substring of stdout+stderr
			}{
				{"read-only-rootfs", []string{"--read-only", env.Image, "ro", "sh", "-c", "touch /newfile"}, -1, "Read-only file system"},
				{"writable-rootfs", []string{env.Image, "rw", "sh", "-c", "touch /newfile && echo wrote"}, 0, "wrote"},
				{"masked-path", []string{env.Image, "mask", "sh", "-c", "echo size=$(wc -c < /proc/timer_list)"}, 0, "size=0"},
				{"dropped-capability", []string{"--cap-drop", "CAP_CHOWN", env.Image, "nocap", "sh", "-c", "touch /tmp/f && chown 1 /tmp/f"}, -1, "Operation not permitted"},
				{"kept-capability", []string{env.Image, "cap", "sh", "-c", "touch /tmp/f && chown 1 /tmp/f && echo chowned"}, 0, "chowned"},
				{"hostname", []string{"--hostname", "limits-host", env.Image, "host", "hostname"}, 0, "limits-host"},
				{"env-cwd-user", []string{"--env", "GREETING=hi", "--cwd", "/tmp", "--user", "65534:65534", env.Image, "user", "sh", "-c", "echo $GREETING $(pwd) $(id -u):$(id -g)"}, 0, "hi /tmp 65534:65534"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					args := append([]string{"run", "--rm", "--runtime", rt}, tc.args...)
					out, errOut, code := env.Ctr(args...)
					all := out + errOut
					if (tc.wantCode == -1 && code == 0) || (tc.wantCode >= 0 && code != tc.wantCode) || !strings.Contains(all, tc.wantOut) {
						t.Errorf("exit %d, output %q; want exit %d and %q", code, all, tc.wantCode, tc.wantOut)
					}
				})
			}
			t.Run("pids-limit", func(t *testing.T) {
				bomb := []string{"sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do sleep 30 & done; echo forked"}
				out, code8 := runSpec(t, env, "pids", []oci.SpecOpts{oci.WithPidsLimit(8)}, bomb...)
				// busybox sh gives up (exit 2) when fork fails.
				if code8 == 0 || strings.Contains(out, "forked") {
					t.Errorf("16 forks under pids.max=8 did not fail: exit %d, %q", code8, out)
				}
				out, code := runSpec(t, env, "pids-ok", []oci.SpecOpts{oci.WithPidsLimit(64)}, bomb...)
				if code != 0 || strings.Contains(out, "can't fork") || !strings.Contains(out, "forked") {
					t.Errorf("16 forks under pids.max=64: exit %d, %q", code, out)
				}
			})
		})
	}
}

// TestOOM: a container exceeding its memory limit gives TaskOOM, then TaskExit 137.
func TestOOM(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			ctx, cancel := contextWithCancel(env)
			defer cancel()
			evch, errch := env.Client().EventService().Subscribe(ctx, `topic=="/tasks/oom"`, `topic=="/tasks/exit"`)
			_, _, code := env.Ctr("run", "--rm", "--runtime", rt, "--memory-limit", "16777216", env.Image, "oom",
				"sh", "-c", "x=$(head -c 128m /dev/zero | tr '\\0' a); echo survived")
			if code != 137 {
				t.Errorf("exit %d, want 137 (killed by the OOM killer)", code)
			}
			var got []string
			timeout := time.After(10 * time.Second)
			for len(got) < 2 {
				select {
				case e := <-evch:
					v, _ := typeurl.UnmarshalAny(e.Event)
					switch v.(type) {
					case *apievents.TaskOOM:
						got = append(got, "oom")
					case *apievents.TaskExit:
						got = append(got, "exit")
					}
				case err := <-errch:
					t.Fatal(err)
				case <-timeout:
					t.Fatalf("events %v, want oom then exit", got)
				}
			}
			if got[0] != "oom" {
				t.Errorf("events %v, want oom before exit", got)
			}
		})
	}
}

// runSpec runs a container whose spec the Go client builds, returning its output and exit.
func runSpec(t *testing.T, env *harness.Env, id string, specOps []oci.SpecOpts, args ...string) (string, int) {
	t.Helper()
	ctx := env.Context()
	c := env.Client()
	image, err := c.GetImage(ctx, env.Image)
	if err != nil {
		t.Fatal(err)
	}
	ops := append([]oci.SpecOpts{oci.WithImageConfig(image), oci.WithProcessArgs(args...)}, specOps...)
	cont, err := c.NewContainer(ctx, id, client.WithNewSnapshot(id, image), client.WithNewSpec(ops...), client.WithRuntime(rt, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer cont.Delete(ctx, client.WithSnapshotCleanup)
	var buf harness.SyncBuffer
	task, err := cont.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &buf, &buf)))
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	defer task.Delete(ctx, client.WithProcessKill)
	ch, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	select {
	case st := <-ch:
		// Background children may hold the output open: kill them, then drain it.
		task.Kill(ctx, 9, client.WithKillAll)
		task.IO().Wait()
		task.Delete(ctx)
		return buf.String(), int(st.ExitCode())
	case <-time.After(60 * time.Second):
		t.Fatal("task did not exit")
	}
	return "", -1
}

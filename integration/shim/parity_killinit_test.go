//go:build linux

package shim_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestKillInitKillsChildren: once the init is killed and its exit reported, none of its
// children is left, with a pid namespace of the container's own and with the host's
// (containerd's TestContainerKillInitKillsChildWhenNotHostPid and
// TestContainerKillInitPidHost).
func TestKillInitKillsChildren(t *testing.T) {
	for _, b := range backends() {
		for _, hostPid := range []bool{false, true} {
			name := b.name + "/private-pidns"
			var ops []oci.SpecOpts
			if hostPid {
				name = b.name + "/host-pidns"
				ops = append(ops, oci.WithHostNamespace(specs.PIDNamespace))
			}
			t.Run(name, func(t *testing.T) {
				env := start(t, b)
				ctx := env.Context()
				marker := fmt.Sprintf("%d.%d", 800000+os.Getpid()%100000, map[bool]int{false: 1, true: 2}[hostPid])
				ops := append(ops, oci.WithProcessArgs("sh", "-c", "/bin/sleep "+marker+" && exit 0"))
				_, task := newTask(t, env, "killinit", cio.NullIO, ops...)
				ch, err := task.Wait(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := task.Start(ctx); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the init's child sleep", func() bool { return len(processesWithArg(marker)) > 0 })
				if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				select {
				case <-ch:
				case <-time.After(30 * time.Second):
					t.Fatal("no exit within 30s of SIGKILL")
				}
				if left := processesWithArg(marker); len(left) > 0 {
					t.Errorf("the init's exit was reported while its child still runs: pids %v", left)
				}
			})
		}
	}
}

// processesWithArg lists the host pids of the running processes whose command line has
// the argument arg (a zombie has none: it has ended, as containerd's test takes it too).
func processesWithArg(arg string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == arg {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// waitFor polls cond for up to 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within 20s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

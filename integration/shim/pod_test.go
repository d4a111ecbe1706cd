//go:build linux

package shim_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestPodNamespaces: a pod's container joins its sandbox's net, ipc and uts namespaces by
// path, as the CRI plugin asks: both see the same hostname and network.
func TestPodNamespaces(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			runDetached(t, env, "sandbox", []string{"--hostname", "pod-host"}, "sleep", "1000")
			defer removeTask(t, env, "sandbox")
			pid := taskPid(t, env, "sandbox")
			show := []string{"sh", "-c", "hostname; readlink /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts; cat /proc/net/dev | wc -l"}
			inSandbox := ctrOK(t, env, append([]string{"task", "exec", "--exec-id", "look", "sandbox"}, show...)...)
			var join []string
			for _, ns := range []struct{ flag, name string }{{"network", "net"}, {"ipc", "ipc"}, {"uts", "uts"}} {
				join = append(join, "--with-ns", fmt.Sprintf("%s:/proc/%d/ns/%s", ns.flag, pid, ns.name))
			}
			args := append(append([]string{"run", "--rm", "--runtime", rt}, join...), env.Image, "member")
			inMember := ctrOK(t, env, append(args, show...)...)
			if !strings.HasPrefix(inSandbox, "pod-host\n") || inMember != inSandbox {
				t.Errorf("member sees\n%s\nsandbox sees\n%s", inMember, inSandbox)
			}
		})
	}
}

//go:build linux

package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/lxcri/lxcri/integration/harness"
)

// lostOutput records a run whose stdout was not "hi\n". Under load containerd's client can
// give up opening its end of the stdout fifo (Task.Delete cancels the fifo opening) before
// the output arrives, so a missing line is counted and reported, not fatal.
func (r *runner) lostOutput(b *Backend, what, id, got string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost == nil {
		r.lost = map[string][]string{}
	}
	r.lost[b.Key] = append(r.lost[b.Key], fmt.Sprintf("%s %s: %q", what, id, got))
	r.progress("%s: %s %s: stdout %q, want \"hi\\n\"", b.Key, what, id, got)
}

func (r *runner) lostNotes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.all {
		if n := r.leftShims[b.Key]; n > 0 {
			out = append(out, fmt.Sprintf("%s: the failed probe left its shim process running (containerd could not shut it down); the bench killed it and removed its socket.", b.Name))
		}
	}
	var socks []string
	for _, b := range r.all {
		if n := r.staleSockets[b.Key]; n > 0 {
			socks = append(socks, fmt.Sprintf("%s %d", b.Name, n))
		}
	}
	if len(socks) > 0 {
		out = append(out, fmt.Sprintf("The sockets of grouped pods' shims were left in /run/containerd/s after the shims exited (%s): containerd's pkg/shim removes the socket named after the shim's first container, not the group's. The bench removed them.", strings.Join(socks, ", ")))
	}
	for _, b := range r.all {
		if l := r.lost[b.Key]; len(l) > 0 {
			out = append(out, fmt.Sprintf("%s: %d runs lost their stdout (%s)", b.Name, len(l), strings.Join(l, "; ")))
		}
	}
	return out
}

// logNotes reports what containerd's log says about the runtimes that bears on the figures.
func logNotes(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var cg int
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `msg="loading cgroup for`) && strings.Contains(l, "runtime="+harness.RuncRuntimeType) {
			cg++
		}
	}
	var out []string
	if cg > 0 {
		out = append(out, fmt.Sprintf("The runc shim could not load the cgroup of %d containers (`loading cgroup for PID: cgroups: cannot find cgroup mount destination`), so it ran them without its OOM watch: on this host the baseline does less per container than the lxcri shim, which loads every container's cgroup.", cg))
	}
	return out
}

// otherDaemons counts the containerd processes of the host other than ours.
func otherDaemons(ours int) int {
	n := 0
	pt := readProcTable()
	for pid, a := range pt.argv0 {
		if a == "containerd" && pid != ours {
			n++
		}
	}
	return n
}

func withNS(ctx context.Context, env *harness.Env) context.Context {
	return namespaces.WithNamespace(ctx, env.Namespace)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b uint64) float64       { return float64(b) / (1 << 20) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	var keep []string
	for _, l := range lines {
		if strings.Contains(l, "level=warning") && strings.Contains(l, "cgroup v1") {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

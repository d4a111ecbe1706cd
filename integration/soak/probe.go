//go:build linux

package soak

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"

	"github.com/lxcri/lxcri/integration/harness"
)

// shimProbe reads what one running shim process holds: its goroutines (from the debug
// endpoint the shim serves when containerd runs at debug level, see shim.RegisterDebugPlugin),
// its open fds (/proc/<pid>/fd) and its resident memory (/proc/<pid>/status).
type shimProbe struct {
	pid   int
	debug string // path of the shim's debug socket
	hc    *http.Client
}

// ShimSample is one reading of a shim process.
type ShimSample struct {
	Goroutines int
	FDs        int
	RSS        uint64 // bytes
}

func newShimProbe(pid int, debugSocket string) *shimProbe {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", debugSocket)
		},
		// One request at a time: a kept-alive connection would be one more fd and
		// goroutine in the shim between samples, so every sample opens its own.
		DisableKeepAlives: true,
	}
	return &shimProbe{pid: pid, debug: debugSocket, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (p *shimProbe) close() { p.hc.CloseIdleConnections() }

// goroutineProfile returns the shim's goroutine profile (pprof's debug=1 text: a total and
// the goroutines grouped by stack).
func (p *shimProbe) goroutineProfile() (string, error) {
	resp, err := p.hc.Get("http://shim/debug/pprof/goroutine?debug=1")
	if err != nil {
		return "", fmt.Errorf("shim %d debug endpoint %s: %w", p.pid, p.debug, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("shim %d debug endpoint: %s: %s", p.pid, resp.Status, b)
	}
	return string(b), nil
}

// goroutines is the total of a pprof goroutine profile ("goroutine profile: total N").
func goroutines(profile string) (int, error) {
	line, _, _ := strings.Cut(profile, "\n")
	n, ok := strings.CutPrefix(line, "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("not a goroutine profile: %q", line)
	}
	return strconv.Atoi(strings.TrimSpace(n))
}

func (p *shimProbe) sample() (ShimSample, string, error) {
	// The fds first: the request below adds a connection (and its goroutine) on the shim's
	// side until the shim sees it closed, a moment after the response.
	fds, err := countFDs(p.pid)
	if err != nil {
		return ShimSample{}, "", err
	}
	prof, err := p.goroutineProfile()
	if err != nil {
		return ShimSample{}, "", err
	}
	g, err := goroutines(prof)
	if err != nil {
		return ShimSample{}, "", err
	}
	rss, err := vmRSS(p.pid)
	if err != nil {
		return ShimSample{}, "", err
	}
	return ShimSample{Goroutines: g, FDs: fds, RSS: rss}, prof, nil
}

// floor reads the shim n times, 50ms apart, and keeps the least goroutines and fds seen
// (and the last RSS): the connection of the previous reading may still be open on the
// shim's side, and a baseline must not include it.
func (p *shimProbe) floor(n int) (ShimSample, string, error) {
	var min ShimSample
	var minProf string
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		s, prof, err := p.sample()
		if err != nil {
			return s, prof, err
		}
		if i == 0 || s.Goroutines < min.Goroutines {
			min.Goroutines, minProf = s.Goroutines, prof
		}
		if i == 0 || s.FDs < min.FDs {
			min.FDs = s.FDs
		}
		min.RSS = s.RSS
	}
	return min, minProf, nil
}

// settle samples the shim until its goroutines and fds are back at or below base, and
// returns the last sample and profile. A shim ends the goroutines and closes the fds of a
// deleted task asynchronously (containerd closes its connection after Delete returns), so
// a single reading right after the last Delete would count those as leaks; what stays
// above base after quiet is what leaked.
func (p *shimProbe) settle(base ShimSample, quiet time.Duration) (ShimSample, string, error) {
	deadline := time.Now().Add(quiet)
	for {
		s, prof, err := p.sample()
		if err != nil {
			return s, prof, err
		}
		if (s.Goroutines <= base.Goroutines && s.FDs <= base.FDs) || time.Now().After(deadline) {
			return s, prof, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func countFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// fdTargets lists what the open fds of pid point to, for the report of a leak.
func fdTargets(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		t, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil {
			out = append(out, e.Name()+" -> "+t)
		}
	}
	return out
}

func vmRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				n, err := strconv.ParseUint(f[0], 10, 64)
				return n * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// shimOf returns the lxcri shim process above pid (a container's init).
func shimOf(pid int) (int, error) {
	for p, n := pid, 0; p > 1 && n < 64; n++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err == nil && filepath.Base(string(bytes.SplitN(b, []byte{0}, 2)[0])) == harness.ShimBinary {
			return p, nil
		}
		if p, err = ppid(p); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("no %s process above pid %d", harness.ShimBinary, pid)
}

func ppid(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strconv.Atoi(f[1])
}

// socketAddress is where containerd's shim manager puts the socket (debug false) or the
// debug socket of the shim of group: socketDir is the folder of the address containerd keeps in the task's bootstrap.json.
func socketAddress(ns, socketDir, containerdSocket, group string, debug bool) (string, error) {
	ctx := namespaces.WithNamespace(context.Background(), ns)
	a, err := shim.CreateSocketAddress(ctx, socketDir, containerdSocket, group, debug)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(a, "unix://"), nil
}

// ---- host resources -------------------------------------------------------------------

// Leaks counts, by kind, what a run left on the host: each entry names one thing.
type Leaks map[string][]string

func (l Leaks) add(kind string, what ...string) { l[kind] = append(l[kind], what...) }

// Total is the number of leaked things of every kind.
func (l Leaks) Total() int {
	n := 0
	for _, v := range l {
		n += len(v)
	}
	return n
}

// LeakKinds are the kinds a run is checked for, in the order of the table.
var LeakKinds = []string{
	"mounts", "cgroups", "lxc containers", "container state", "processes", "shims",
	"sockets", "fifos", "datasets", "goroutines", "fds",
}

// scope is what belongs to one soak run: its containerd, namespace, id prefix and state.
type scope struct {
	env      *harness.Env
	ns       string
	prefix   string // every container id and group of the run starts with it
	stateDir string // lxcri's state_dir for the run
	fifoDir  string // the client's fifos
	pool     string // ZFS pool, "" without
	sockets  []string
}

// hostState is everything of a scope that is on the host at one moment.
type hostState struct {
	mounts, cgroups, lxc, state, procs, shims, sockets, fifos, datasets []string
}

func (s *scope) snapshot(datasets func() []string) hostState {
	var h hostState
	for _, dir := range []string{s.env.Root, s.stateDir} {
		h.mounts = append(h.mounts, harness.MountsUnder(dir)...)
	}
	for _, m := range mountPoints() {
		if strings.Contains(m, s.prefix) && !contains(h.mounts, m) {
			h.mounts = append(h.mounts, m)
		}
	}
	// Every v1 hierarchy and the cgroup2 tree: the containers' own cgroups and LXC's
	// lxc.monitor.<name> / lxc.payload.<name> carry the id.
	h.cgroups = harness.CgroupsNamed(s.prefix)
	// An LXC container is a folder with a config in its lxcpath <state_dir>/<ns>; a
	// running one also has a monitor process naming that lxcpath.
	lxcpath := filepath.Join(s.stateDir, s.ns)
	ents, _ := os.ReadDir(lxcpath)
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(lxcpath, e.Name(), "config")); err == nil {
			h.lxc = append(h.lxc, filepath.Join(lxcpath, e.Name()))
		}
	}
	_ = filepath.WalkDir(s.stateDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(p) != "host.toml" {
			h.state = append(h.state, p)
		}
		return nil
	})
	for _, p := range harness.Procs() {
		cmdline := p.Cmdline()
		switch {
		case p.Name() == harness.ShimBinary && strings.Contains(cmdline, s.env.Socket):
			h.shims = append(h.shims, fmt.Sprintf("pid %d: %s", p.Pid, cmdline))
		case strings.Contains(cmdline, s.stateDir) || strings.Contains(p.Cgroup(), s.prefix):
			// LXC monitors, lxcri-start helpers, runc, and every process of a container.
			h.procs = append(h.procs, fmt.Sprintf("pid %d: %s", p.Pid, cmdline))
		}
	}
	for _, so := range s.sockets {
		if _, err := os.Lstat(so); err == nil {
			h.sockets = append(h.sockets, so)
		}
	}
	for _, dir := range []string{s.env.Root, s.stateDir, s.fifoDir} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeNamedPipe != 0 && !contains(h.fifos, p) {
				h.fifos = append(h.fifos, p)
			}
			return nil
		})
	}
	if datasets != nil {
		h.datasets = datasets()
	}
	return h
}

// leaks is what end holds and start did not.
func leaks(start, end hostState) Leaks {
	l := Leaks{}
	l.add("mounts", added(start.mounts, end.mounts)...)
	l.add("cgroups", added(start.cgroups, end.cgroups)...)
	l.add("lxc containers", added(start.lxc, end.lxc)...)
	l.add("container state", added(start.state, end.state)...)
	l.add("processes", added(start.procs, end.procs)...)
	l.add("shims", added(start.shims, end.shims)...)
	l.add("sockets", added(start.sockets, end.sockets)...)
	l.add("fifos", added(start.fifos, end.fifos)...)
	l.add("datasets", added(start.datasets, end.datasets)...)
	return l
}

func added(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !contains(before, a) {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func mountPoints() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			out = append(out, f[4])
		}
	}
	return out
}

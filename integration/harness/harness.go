//go:build linux

// Package harness starts a private containerd for integration tests and drives it with
// ctr, nerdctl, crictl and the containerd Go client.
//
// Every Env runs its own containerd v2 (built by `make setup` into the tools folder) on a
// fresh temporary root, with its own socket, state, CNI config and log, and with the lxcri
// shim folder first on the daemon's PATH, so `--runtime io.containerd.lxcri.v2` reaches the
// shim built by `make build`. A busybox image, built offline by contrib/scripts/build-image.sh,
// is imported into the Env's namespaces. Cleanup kills every task, deletes every container,
// stops the daemon, kills shims left behind, unmounts what is still mounted under the root
// and removes it.
//
// Nothing here skips a test: a missing tool fails the test and says to run `make setup`.
//
// Environment:
//
//	LXCRI_TOOLS_DIR  folder with containerd, ctr, containerd-shim-runc-v2, nerdctl, crictl
//	                 (or its parent holding bin/); default ${XDG_CACHE_HOME:-~/.cache}/lxcri/tools/bin
//	LXCRI_SHIM_DIR   folder with containerd-shim-lxcri-v2; default <repo>/bin
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/lxcri/lxcri/integration/inherit"
)

const (
	// DefaultImage is the name under which the busybox image is imported.
	DefaultImage = "docker.io/library/busybox:lxcri"
	// ShimBinary is the name of the lxcri shim binary.
	ShimBinary = "containerd-shim-lxcri-v2"
	// RuntimeType is the containerd runtime type of the lxcri shim.
	RuntimeType = "io.containerd.lxcri.v2"
	// RuncRuntimeType is containerd's own runc shim, found in the tools folder.
	RuncRuntimeType = "io.containerd.runc.v2"
	// CNIBinDir is where Debian's containernetworking-plugins live.
	CNIBinDir = "/usr/lib/cni"

	setupHint = "run `make setup` (or contrib/scripts/setup-host.sh)"
)

// Option changes how Start sets up an Env.
type Option func(*options)

type options struct {
	namespace      string
	extraNS        []string
	image          bool
	requireShim    bool
	configAppend   []string
	configPatch    []func(string) string
	env            []string
	timeout        time.Duration
	startTimeout   time.Duration
	sandboxImage   string
	tailOnFailure  int
	logLevel       string
	shimDir, tools string
}

// WithNamespace sets the Env's namespace (default: "lxcri-" and random hex, so that
// concurrent Envs never share /run/containerd/<runtime>/<namespace>).
func WithNamespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// WithExtraNamespaces imports the image into these namespaces too (e.g. "k8s.io" for CRI);
// use Env.In(ns) to work in one of them.
func WithExtraNamespaces(ns ...string) Option {
	return func(o *options) { o.extraNS = append(o.extraNS, ns...) }
}

// WithoutImage skips building and importing the busybox image.
func WithoutImage() Option { return func(o *options) { o.image = false } }

// WithoutShim lets Start run without the lxcri shim binary (for tests of containerd's own
// runc shim, or of the harness itself). By default a missing shim fails the test.
func WithoutShim() Option { return func(o *options) { o.requireShim = false } }

// WithConfig appends TOML to the generated containerd config (e.g. a runtime section).
func WithConfig(toml string) Option {
	return func(o *options) { o.configAppend = append(o.configAppend, toml) }
}

// WithConfigPatch rewrites the generated containerd config text before it is written.
func WithConfigPatch(f func(config string) string) Option {
	return func(o *options) { o.configPatch = append(o.configPatch, f) }
}

// WithDaemonEnv adds KEY=VALUE pairs to containerd's environment (shims inherit it).
func WithDaemonEnv(kv ...string) Option { return func(o *options) { o.env = append(o.env, kv...) } }

// WithTimeout sets the timeout of each Ctr/Nerdctl/Crictl call (default 60s).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithSandboxImage sets the CRI sandbox (pause) image in the containerd config.
func WithSandboxImage(ref string) Option { return func(o *options) { o.sandboxImage = ref } }

// WithShimDir overrides LXCRI_SHIM_DIR.
func WithShimDir(dir string) Option { return func(o *options) { o.shimDir = dir } }

// Env is one private containerd and a namespace in it. Env.In returns views of the same
// daemon in other namespaces.
type Env struct {
	// Namespace is the containerd namespace Ctr, Nerdctl and Client use.
	Namespace string
	// Image is the imported busybox image ("" with WithoutImage).
	Image string
	// Socket is the absolute path of containerd's gRPC socket.
	Socket string
	// Root is the temporary folder holding everything of this Env.
	Root string
	// LogPath is containerd's log (debug level; shim logs end up there too).
	LogPath string
	// ConfigPath is the generated containerd config.
	ConfigPath string
	// ToolsDir holds containerd, ctr, nerdctl, crictl, containerd-shim-runc-v2.
	ToolsDir string
	// ShimDir holds containerd-shim-lxcri-v2; it is first on the daemon's PATH.
	ShimDir string
	// Timeout bounds each Ctr, Nerdctl and Crictl call.
	Timeout time.Duration

	t testing.TB
	d *daemon
}

type daemon struct {
	mu      sync.Mutex
	opts    options
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	path    string // PATH of the daemon
	clients map[string]*client.Client
	nsUsed  map[string]bool
}

// Start starts a private containerd and registers its cleanup with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	o := options{
		image:         true,
		requireShim:   true,
		timeout:       60 * time.Second,
		startTimeout:  60 * time.Second,
		tailOnFailure: 80,
		logLevel:      "debug",
	}
	for _, f := range opts {
		f(&o)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("harness: integration tests need root (containerd, mounts, cgroups); run them as root, e.g. `sudo make test`")
	}
	if o.namespace == "" {
		o.namespace = "lxcri-" + randHex(4)
	}

	tools := ToolsDir(t)
	o.tools = tools
	shimDir := o.shimDir
	if shimDir == "" {
		shimDir = ShimDir()
	}
	if o.requireShim {
		if _, err := os.Stat(filepath.Join(shimDir, ShimBinary)); err != nil {
			t.Fatalf("harness: %s not found in %s (set LXCRI_SHIM_DIR or run `make build`): %v", ShimBinary, shimDir, err)
		}
	}
	var image string
	var imageTar string
	if o.image {
		imageTar = BusyboxImage(t)
		image = DefaultImage
	}

	root, err := os.MkdirTemp("/tmp", "lxcri-h")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	e := &Env{
		Namespace:  o.namespace,
		Image:      image,
		Socket:     filepath.Join(root, "containerd.sock"),
		Root:       root,
		LogPath:    filepath.Join(root, "containerd.log"),
		ConfigPath: filepath.Join(root, "config.toml"),
		ToolsDir:   tools,
		ShimDir:    shimDir,
		Timeout:    o.timeout,
		t:          t,
		d: &daemon{
			opts:    o,
			clients: map[string]*client.Client{},
			nsUsed:  map[string]bool{o.namespace: true},
		},
	}
	for _, ns := range o.extraNS {
		e.d.nsUsed[ns] = true
	}
	t.Cleanup(e.cleanup)

	for _, d := range []string{"root", "state", "opt", "cni/net.d", "nri", "nerdctl"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o711); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	e.d.path = strings.Join([]string{shimDir, tools, systemPath()}, string(os.PathListSeparator))
	if err := e.writeConfig(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := e.writeCrictlConfig(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := e.startDaemon(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if imageTar != "" {
		for _, ns := range append([]string{o.namespace}, o.extraNS...) {
			stdout, stderr, code := e.In(ns).Ctr("images", "import", imageTar)
			if code != 0 {
				t.Fatalf("harness: importing %s into namespace %s failed (exit %d): %s%s", imageTar, ns, code, stdout, stderr)
			}
		}
	}
	return e
}

// In returns a view of the same containerd in namespace ns (the image is imported there
// only if ns was given to WithExtraNamespaces or is the Env's namespace). Cleanup covers
// every namespace of the daemon.
func (e *Env) In(ns string) *Env {
	c := *e
	c.Namespace = ns
	e.d.mu.Lock()
	e.d.nsUsed[ns] = true
	e.d.mu.Unlock()
	return &c
}

// Context returns a background context in the Env's namespace, for use with Client.
func (e *Env) Context() context.Context {
	return namespaces.WithNamespace(context.Background(), e.Namespace)
}

// Client returns a containerd Go client connected to this Env, with the Env's namespace as
// default. It is shared, survives Restart, and is closed by the cleanup: do not Close it.
func (e *Env) Client() *client.Client {
	e.t.Helper()
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	if c, ok := e.d.clients[e.Namespace]; ok {
		return c
	}
	c, err := client.New(e.Socket, client.WithDefaultNamespace(e.Namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		e.t.Fatalf("harness: containerd client: %v", err)
	}
	e.d.clients[e.Namespace] = c
	return c
}

// Ctr runs the tools folder's ctr against this Env (`ctr -a SOCKET -n NAMESPACE args...`).
// exitCode is -1 when ctr could not run or timed out (then stderr says why).
func (e *Env) Ctr(args ...string) (stdout, stderr string, exitCode int) {
	e.t.Helper()
	return e.CtrStdin(nil, args...)
}

// CtrStdin is Ctr with stdin.
func (e *Env) CtrStdin(stdin io.Reader, args ...string) (stdout, stderr string, exitCode int) {
	e.t.Helper()
	full := append([]string{"-a", e.Socket, "-n", e.Namespace}, args...)
	return e.run(stdin, filepath.Join(e.ToolsDir, "ctr"), full...)
}

// Nerdctl runs the tools folder's nerdctl against this Env, with its own data root and CNI
// config folder under Env.Root.
func (e *Env) Nerdctl(args ...string) (stdout, stderr string, exitCode int) {
	e.t.Helper()
	return e.NerdctlStdin(nil, args...)
}

// NerdctlStdin is Nerdctl with stdin.
func (e *Env) NerdctlStdin(stdin io.Reader, args ...string) (stdout, stderr string, exitCode int) {
	e.t.Helper()
	bin := filepath.Join(e.ToolsDir, "nerdctl")
	if _, err := os.Stat(bin); err != nil {
		e.t.Fatalf("harness: nerdctl not found in %s; %s", e.ToolsDir, setupHint)
	}
	full := append([]string{
		"--address", e.Socket,
		"--namespace", e.Namespace,
		"--data-root", filepath.Join(e.Root, "nerdctl"),
		"--cni-path", CNIBinDir,
		"--cni-netconfpath", filepath.Join(e.Root, "cni", "net.d"),
	}, args...)
	return e.run(stdin, bin, full...)
}

// Crictl runs the tools folder's crictl against this Env's CRI endpoint. CRI works in
// namespace k8s.io: use WithExtraNamespaces("k8s.io") to have the image there.
func (e *Env) Crictl(args ...string) (stdout, stderr string, exitCode int) {
	e.t.Helper()
	bin := filepath.Join(e.ToolsDir, "crictl")
	if _, err := os.Stat(bin); err != nil {
		e.t.Fatalf("harness: crictl not found in %s; %s", e.ToolsDir, setupHint)
	}
	full := append([]string{"--config", filepath.Join(e.Root, "crictl.yaml")}, args...)
	return e.run(nil, bin, full...)
}

func (e *Env) run(stdin io.Reader, bin string, args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"PATH="+e.d.path,
		"NERDCTL_TOML="+filepath.Join(e.Root, "nerdctl.toml"), // absent: no host config
		"CONTAINERD_ADDRESS="+e.Socket,
		"CONTAINERD_NAMESPACE="+e.Namespace,
	)
	cmd.Stdin = stdin
	// dies with the test binary (a `go test -timeout` panic leaves no ctr behind)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			code = -1
			fmt.Fprintf(&errb, "\nharness: %s timed out after %v", filepath.Base(bin), e.Timeout)
		case errors.As(err, &ee):
			code = ee.ExitCode()
		default:
			code = -1
			fmt.Fprintf(&errb, "\nharness: %v", err)
		}
	}
	se := filterWarnings(errb.String())
	if code != 0 {
		e.t.Logf("harness: %s %s: exit %d: %s", filepath.Base(bin), strings.Join(args, " "), code, strings.TrimSpace(se))
	} else {
		e.t.Logf("harness: %s %s: ok", filepath.Base(bin), strings.Join(args, " "))
	}
	return out.String(), se, code
}

// filterWarnings drops the warning every ctr 2.x call prints on a cgroup v1 host.
func filterWarnings(s string) string {
	if !strings.Contains(s, "cgroup v1") {
		return s
	}
	var keep []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if strings.Contains(l, "level=warning") && strings.Contains(l, "cgroup v1") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "")
}

// Restart stops containerd with SIGTERM (SIGKILL after 10s) and starts it again on the
// same root, state and config; running shims and their tasks stay up. Clients returned by
// Client keep working.
func (e *Env) Restart() {
	e.t.Helper()
	if err := e.stopDaemon(10 * time.Second); err != nil {
		e.t.Fatalf("harness: restart: %v", err)
	}
	if err := e.startDaemon(); err != nil {
		e.t.Fatalf("harness: restart: %v", err)
	}
	e.d.mu.Lock()
	clients := make([]*client.Client, 0, len(e.d.clients))
	for _, c := range e.d.clients {
		clients = append(clients, c)
	}
	e.d.mu.Unlock()
	for _, c := range clients {
		if err := c.Reconnect(); err != nil {
			e.t.Fatalf("harness: restart: reconnecting client: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.IsServing(ctx)
		cancel()
		if err != nil {
			e.t.Fatalf("harness: restart: client not serving: %v", err)
		}
	}
}

// DaemonPID returns the pid of the running containerd, or 0.
func (e *Env) DaemonPID() int {
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	if e.d.cmd == nil || e.d.cmd.Process == nil {
		return 0
	}
	select {
	case <-e.d.done:
		return 0
	default:
		return e.d.cmd.Process.Pid
	}
}

// ShimProcesses returns the pids of this Env's shims (any runtime), i.e. processes whose
// command line names this Env's containerd socket.
func (e *Env) ShimProcesses() []int {
	var pids []int
	for _, p := range Procs() {
		if strings.HasPrefix(filepath.Base(p.Argv0), "containerd-shim") && p.HasArg(e.Socket) {
			pids = append(pids, p.Pid)
		}
	}
	return pids
}

func (e *Env) writeConfig() error {
	o := e.d.opts
	bin := filepath.Join(e.ToolsDir, "containerd")
	out, err := exec.Command(bin, "config", "default").Output()
	if err != nil {
		return fmt.Errorf("%s config default: %w", bin, err)
	}
	cfg, err := patchConfig(string(out), e.Root, e.Socket, o.sandboxImage)
	if err != nil {
		return err
	}
	for _, f := range o.configPatch {
		cfg = f(cfg)
	}
	for _, s := range o.configAppend {
		cfg += "\n" + s + "\n"
	}
	return os.WriteFile(e.ConfigPath, []byte(cfg), 0o644)
}

// patchConfig points a `containerd config default` (v2.x layout) into root.
func patchConfig(cfg, root, socket, sandboxImage string) (string, error) {
	r := strings.NewReplacer(
		"/run/containerd/containerd.sock", socket,
		"/var/lib/containerd", filepath.Join(root, "root"),
		"/run/containerd", filepath.Join(root, "state"),
		"/opt/containerd", filepath.Join(root, "opt"),
		"/opt/cni/bin", CNIBinDir,
		"/etc/cni/net.d", filepath.Join(root, "cni", "net.d"),
		"/var/run/nri/nri.sock", filepath.Join(root, "nri", "nri.sock"),
		"/opt/nri/plugins", filepath.Join(root, "nri", "plugins"),
		"/etc/nri/conf.d", filepath.Join(root, "nri", "conf.d"),
	)
	out := r.Replace(cfg)
	for _, must := range []string{"restrict_oom_score_adj = false"} {
		if !strings.Contains(out, must) {
			return "", fmt.Errorf("unexpected containerd default config: %q not found", must)
		}
	}
	out = strings.Replace(out, "restrict_oom_score_adj = false", "restrict_oom_score_adj = true", 1)
	if sandboxImage != "" {
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "sandbox = ") && strings.Contains(l, "pause") {
				indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
				l = indent + "sandbox = '" + sandboxImage + "'"
			}
			lines = append(lines, l)
		}
		out = strings.Join(lines, "\n")
	}
	// log level: set on the command line (--log-level) so that it also holds for
	// configs that came with a [debug] section already set.
	if strings.Contains(out, "/run/containerd") || strings.Contains(out, "/var/lib/containerd") {
		return "", fmt.Errorf("containerd config still points at system paths")
	}
	return out, nil
}

func (e *Env) writeCrictlConfig() error {
	y := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: %d\ndebug: false\npull-image-on-create: false\n",
		e.Socket, e.Socket, int(e.Timeout/time.Second))
	return os.WriteFile(filepath.Join(e.Root, "crictl.yaml"), []byte(y), 0o644)
}

func (e *Env) startDaemon() error {
	d := e.d
	logf, err := os.OpenFile(e.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- harness: starting containerd at %s ----\n", time.Now().Format(time.RFC3339Nano))
	inherit.CloseOnExec()
	cmd := exec.Command(filepath.Join(e.ToolsDir, "containerd"), "--config", e.ConfigPath, "--log-level", d.opts.logLevel)
	cmd.Env = append(append(os.Environ(), "PATH="+d.path), d.opts.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = e.Root
	// Own process group (a ^C to `go test` reaches the test, which cleans up), and killed
	// if the test binary dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	_ = os.Remove(e.Socket)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting containerd: %w", err)
	}
	done := make(chan struct{})
	d.mu.Lock()
	d.cmd, d.done = cmd, done
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.waitErr = err
		d.mu.Unlock()
		close(done)
	}()

	deadline := time.Now().Add(d.opts.startTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("containerd exited during startup (%v); log %s:\n%s", d.waitErr, e.LogPath, tail(e.LogPath, 30))
		default:
		}
		if _, err := os.Stat(e.Socket); err == nil {
			if e.serving() {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not serve on %s within %v; log %s:\n%s", e.Socket, d.opts.startTimeout, e.LogPath, tail(e.LogPath, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *Env) serving() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := client.New(e.Socket, client.WithTimeout(2*time.Second))
	if err != nil {
		return false
	}
	defer c.Close()
	ok, err := c.IsServing(ctx)
	return err == nil && ok
}

// stopDaemon sends SIGTERM, then SIGKILL after grace.
func (e *Env) stopDaemon(grace time.Duration) error {
	d := e.d
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	e.t.Logf("harness: containerd %d did not stop within %v of SIGTERM; sending SIGKILL", cmd.Process.Pid, grace)
	_ = cmd.Process.Kill()
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("containerd %d survives SIGKILL", cmd.Process.Pid)
	}
}

func (e *Env) cleanup() {
	t := e.t
	if t.Failed() {
		t.Logf("harness: containerd log %s (last lines):\n%s", e.LogPath, tail(e.LogPath, e.d.opts.tailOnFailure))
	}
	if e.DaemonPID() != 0 {
		e.removeAll()
	}
	e.d.mu.Lock()
	for ns, c := range e.d.clients {
		_ = c.Close()
		delete(e.d.clients, ns)
	}
	e.d.mu.Unlock()
	if err := e.stopDaemon(10 * time.Second); err != nil {
		t.Logf("harness: cleanup: %v", err)
	}
	// shims of this daemon that outlived it
	for _, pid := range e.ShimProcesses() {
		t.Logf("harness: cleanup: killing leftover shim %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, m := range MountsUnder(e.Root) { // deepest first
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Logf("harness: cleanup: umount %s: %v", m, err)
		}
	}
	if err := os.RemoveAll(e.Root); err != nil {
		t.Logf("harness: cleanup: %v", err)
	}
	// runc keeps per-namespace state folders under /run/containerd/runc; drop empty ones.
	e.d.mu.Lock()
	for ns := range e.d.nsUsed {
		if ns != "default" && ns != "k8s.io" {
			_ = os.Remove(filepath.Join("/run/containerd/runc", ns))
			removeNamespaceLeftovers(ns)
		}
	}
	e.d.mu.Unlock()
}

// removeNamespaceLeftovers drops what a test namespace leaves once its containers are gone:
// the empty per-namespace folders of lxcri's state dir (and its CLIs' roots) and the empty
// per-namespace cgroups that containerd's clients put containers under. rmdir only
// removes empty folders, so a leaked container still shows in the leak checks.
func removeNamespaceLeftovers(ns string) {
	_ = os.Remove(filepath.Join("/run/lxcri", ns))
	roots, _ := filepath.Glob(filepath.Join("/run/lxcri", "*", ns))
	for _, r := range roots {
		_ = os.Remove(r)
	}
	for _, cg := range CgroupsNamed(ns) {
		if filepath.Base(cg) == ns {
			_ = syscall.Rmdir(cg)
		}
	}
}

// removeAll kills every task and deletes every container, in every namespace.
func (e *Env) removeAll() {
	t := e.t
	c, err := client.New(e.Socket, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Logf("harness: cleanup: client: %v", err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		t.Logf("harness: cleanup: listing namespaces: %v", err)
		return
	}
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := c.Containers(nctx)
		if err != nil {
			t.Logf("harness: cleanup: listing containers in %s: %v", ns, err)
			continue
		}
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				kctx, kcancel := context.WithTimeout(nctx, 15*time.Second)
				if ch, err := task.Wait(kctx); err == nil {
					if err := task.Kill(kctx, syscall.SIGKILL, client.WithKillAll); err != nil {
						t.Logf("harness: cleanup: kill %s/%s: %v", ns, ctr.ID(), err)
					}
					select {
					case <-ch:
					case <-kctx.Done():
						t.Logf("harness: cleanup: task %s/%s did not exit after SIGKILL", ns, ctr.ID())
					}
				}
				kcancel()
				dctx, dcancel := context.WithTimeout(nctx, 15*time.Second)
				if _, err := task.Delete(dctx, client.WithProcessKill); err != nil {
					t.Logf("harness: cleanup: delete task %s/%s: %v", ns, ctr.ID(), err)
				}
				dcancel()
			}
			dctx, dcancel := context.WithTimeout(nctx, 15*time.Second)
			if err := ctr.Delete(dctx, client.WithSnapshotCleanup); err != nil {
				t.Logf("harness: cleanup: delete container %s/%s: %v", ns, ctr.ID(), err)
			}
			dcancel()
		}
	}
}

// ---- locating tools -------------------------------------------------------------------

// ToolsDir returns the folder with containerd, ctr and friends, failing t (with a hint to
// run `make setup`) when containerd or ctr is not there.
func ToolsDir(t testing.TB) string {
	t.Helper()
	dir, err := toolsDir()
	if err != nil {
		t.Fatalf("harness: %v; %s", err, setupHint)
	}
	return dir
}

func toolsDir() (string, error) {
	var cands []string
	if d := os.Getenv("LXCRI_TOOLS_DIR"); d != "" {
		cands = append(cands, d, filepath.Join(d, "bin"))
	} else {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("cannot locate the tools folder: %w", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		cands = append(cands, filepath.Join(cache, "lxcri", "tools", "bin"))
	}
	for _, d := range cands {
		if isExec(filepath.Join(d, "containerd")) && isExec(filepath.Join(d, "ctr")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("containerd and ctr not found in %s", strings.Join(cands, " or "))
}

// ShimDir returns LXCRI_SHIM_DIR, or <repo>/bin.
func ShimDir() string {
	if d := os.Getenv("LXCRI_SHIM_DIR"); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	if r := RepoRoot(); r != "" {
		return filepath.Join(r, "bin")
	}
	return "bin"
}

// RepoRoot returns the root of the lxcri source tree ("" if not found): the folder with
// the go.mod of github.com/lxcri/lxcri, searched upwards from this file and from the
// working directory.
func RepoRoot() string {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && strings.Contains(string(b), "module github.com/lxcri/lxcri\n") {
				return dir
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}

func systemPath() string {
	p := os.Getenv("PATH")
	if p == "" {
		p = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return p
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

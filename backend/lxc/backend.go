// Package lxc is the backend that runs OCI containers as LXC containers through liblxc
// (go-lxc) and lxcri-start, a single-threaded C helper (helper/lxcri-start.c): liblxc
// refuses to start a container in the foreground from a threaded process, and a daemonized
// start loses the init's stdio and exit status.
//
// Layout: a container is LXC container <id> of lxcpath <state_dir>/<namespace>, so its LXC
// directory is the shim's StateDir for it, holding the configuration Translate made from the
// OCI spec, liblxc's log, the seccomp policy and hook descriptions. The root filesystem is
// the one the shim mounted (lxc.rootfs.managed = 0): nothing here ever destroys it.
//
// Processes: the init is the OCI process itself, PID 1 of the container, started by
// `lxcri-start start` (the container's monitor, a child of the shim, with the init's stdio)
// which exits with the init's status; execs run through `lxcri-start exec` (lxc attach).
// Both report the process's host pid on file descriptor 3. Stats, updates, pause, kill-all
// and OOM events go through runtime/cgroups on the container's cgroup.
package lxc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	golxc "github.com/lxc/go-lxc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/cgroups"
)

// Name is the backend's configuration name.
const Name = "lxc"

// Files of a container's LXC directory.
const (
	configFile = "config"
	logFile    = "lxc.log"
	// oomCountFile is the OOM kill count the stop hook saves.
	oomCountFile = "oom_kill"
)

type backend struct {
	s      *settings
	layout CgroupLayout
}

// New makes the lxc backend from the [lxc] table of cfg. It fails when the start helper
// is missing.
func New(ctx context.Context, cfg *runtime.Config) (runtime.Backend, error) {
	s, err := resolveSettings(cfg.LXC)
	if err != nil {
		return nil, err
	}
	return &backend{s: s, layout: cgroupLayout()}, nil
}

func (b *backend) Name() string { return Name }

// Needs: a local backend; the container runs on this host from the rootfs the shim
// mounts, its processes are host processes, and checkpoints go to the shim's ZFS store.
func (b *backend) Needs() runtime.Needs {
	return runtime.Needs{HostRootfs: true, HostPids: true}
}

// names returns the LXC container name and lxcpath of a state directory.
func names(id, stateDir string) (name, lxcpath string, err error) {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return "", "", fmt.Errorf("container id %q cannot name an LXC container: %w", id, errdefs.ErrInvalidArgument)
	}
	if filepath.Base(stateDir) != id {
		return "", "", fmt.Errorf("state directory %s does not end in the container id %s: %w", stateDir, id, errdefs.ErrInvalidArgument)
	}
	return id, filepath.Dir(stateDir), nil
}

// hostStat is Options.Stat: it follows symlinks, and for paths in the root filesystem
// resolves them inside it.
func hostStat(rootfs string) func(string) (fs.FileMode, error) {
	return func(p string) (fs.FileMode, error) {
		if rootfs != "" && strings.HasPrefix(p, rootfs+"/") {
			resolved, err := resolveInRoot(rootfs, strings.TrimPrefix(p, rootfs))
			if err != nil {
				return 0, err
			}
			p = resolved
		}
		fi, err := os.Stat(p)
		if err != nil {
			return 0, err
		}
		return fi.Mode(), nil
	}
}

// resolveInRoot resolves symlinks of p as if root were "/".
func resolveInRoot(root, p string) (string, error) {
	cur := "/"
	parts := strings.Split(strings.Trim(filepath.Clean("/"+p), "/"), "/")
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", &os.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(strings.Trim(target, "/"), "/"), parts...)
	}
	return filepath.Join(root, cur), nil
}

func (b *backend) Create(ctx context.Context, req *runtime.CreateRequest) (_ runtime.Container, retErr error) {
	name, lxcpath, err := names(req.ID, req.StateDir)
	if err != nil {
		return nil, err
	}
	opts := Options{
		Name:      name,
		Namespace: req.Namespace,
		Rootfs:    req.Rootfs,
		Bundle:    req.Bundle,
		Dir:       req.StateDir,
		Helper:    b.s.helper,
		LogFile:   filepath.Join(req.StateDir, logFile),
		LogLevel:  b.s.logLevel,
		Cgroup:    b.layout,
		Stat:      hostStat(req.Rootfs),
	}
	res, err := Translate(req.Spec, opts)
	if err != nil {
		return nil, err
	}
	if err := checkHostLSM(req.Spec); err != nil {
		return nil, err
	}
	// Mount points missing in the image are made here, inside the rootfs or the volume
	// they are in, not by liblxc (whose create= follows the image's symlinks on the host).
	if err := createMountPoints(res.MountPoints); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(req.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("create %s: %w", req.StateDir, err)
	}
	defer func() {
		if retErr != nil {
			removeFiles(req.StateDir)
		}
	}()
	for _, f := range res.Files {
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(f.Path, f.Data, f.Mode); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.Path, err)
		}
	}
	cfgPath := filepath.Join(req.StateDir, configFile)
	cfg, err := res.Render()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return nil, fmt.Errorf("write LXC configuration: %w", err)
	}
	// Let liblxc parse the configuration now, so that a bad one fails Create rather than
	// Start. (Loading forks nothing; only go-lxc calls that fork and wait would race with
	// the shim's reaper.)
	lc, err := golxc.NewContainer(name, lxcpath)
	if err != nil {
		return nil, fmt.Errorf("liblxc rejects the configuration %s: %v%s: %w", cfgPath, err, logTail(filepath.Join(req.StateDir, logFile)), errdefs.ErrInvalidArgument)
	}
	defined := lc.Defined()
	golxc.Release(lc)
	if !defined {
		return nil, fmt.Errorf("liblxc does not see container %s in %s: %w", name, lxcpath, errdefs.ErrFailedPrecondition)
	}
	c := newContainer(b, req, res, name, lxcpath)
	if res.Init.Terminal {
		// The init's terminal exists from Create on, as under runc: a client may resize it
		// before Start (ctr does).
		if err := c.init.openTerminal(ctx, res.Init.ConsoleSize); err != nil {
			return nil, err
		}
	}
	if err := c.launchInit(ctx); err != nil {
		c.init.closeSlave()
		return nil, err
	}
	// As runc, a program that is not there fails Create, not Start: the init is in the
	// container's root by now, held before it runs the program.
	if err := checkInitProgram(c.init.Pid(), req.Spec.Process); err != nil {
		if derr := c.Delete(ctx, true); derr != nil {
			log.G(ctx).WithError(derr).WithField("id", req.ID).Warn("lxc: remove the container whose program is missing")
		}
		return nil, err
	}
	log.G(ctx).WithField("id", req.ID).Debugf("lxc: created container %s in %s, init %d", name, lxcpath, c.init.Pid())
	return c, nil
}

// checkHostLSM refuses LSM settings the host cannot apply: liblxc would quietly run the
// container unconfined.
func checkHostLSM(spec *specs.Spec) error {
	if spec.Process == nil {
		return nil
	}
	if p := spec.Process.ApparmorProfile; p != "" && p != "unconfined" {
		if !hostAppArmor() {
			return &FieldError{Field: "process.apparmorProfile", Msg: fmt.Sprintf("AppArmor is not enabled on this host; cannot apply profile %q", p)}
		}
	}
	if l := spec.Process.SelinuxLabel; l != "" {
		if !hostSELinux() {
			return &FieldError{Field: "process.selinuxLabel", Msg: fmt.Sprintf("SELinux is not enabled on this host; cannot apply label %q", l)}
		}
	}
	return nil
}

// removeFiles removes what Create wrote into a container's directory (never the rootfs,
// which lives in the bundle), and the directory when that leaves it empty.
func removeFiles(dir string) {
	for _, f := range []string{configFile, logFile, oomCountFile, "seccomp.policy", "hooks"} {
		os.RemoveAll(filepath.Join(dir, f))
	}
	os.Remove(dir)
}

// logTail returns liblxc's last error lines from the container's log, for error messages.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		l := s.Text()
		if strings.Contains(l, " ERROR ") || strings.Contains(l, " CRIT ") || strings.Contains(l, " FATAL ") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 4 {
		lines = lines[len(lines)-4:]
	}
	if len(lines) == 0 {
		return ""
	}
	// drop the "lxc <name> <timestamp> ERROR    " prefixes
	for i, l := range lines {
		if j := strings.Index(l, " - "); j >= 0 {
			lines[i] = strings.TrimSpace(l[j+3:])
		}
	}
	return " (liblxc: " + strings.Join(lines, "; ") + ")"
}

// readConfigValue returns the last value of key in an LXC configuration file.
func readConfigValue(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var v string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		k, val, ok := strings.Cut(s.Text(), "=")
		if ok && strings.TrimSpace(k) == key {
			v = strings.TrimSpace(val)
		}
	}
	return v
}

// Cleanup force-removes what Create and Start left after the shim serving the container
// died: every process in the container's and its monitor's cgroups is killed, the cgroups
// and the configuration are removed. The root filesystem is not touched.
func (b *backend) Cleanup(ctx context.Context, req *runtime.CleanupRequest) error {
	if _, _, err := names(req.ID, req.StateDir); err != nil {
		return err
	}
	cfgPath := filepath.Join(req.StateDir, configFile)
	cgPath := readConfigValue(cfgPath, "lxc.cgroup.dir.container")
	monPath := readConfigValue(cfgPath, "lxc.cgroup.dir.monitor")
	var errs []error
	if cgPath != "" {
		if cg, err := cgroups.Load("/" + cgPath); err == nil {
			if err := cg.KillAll(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	for _, p := range []string{cgPath, monPath} {
		if p == "" {
			continue
		}
		for _, pid := range cgroupProcs(p) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range []string{cgPath, monPath} {
		if p == "" {
			continue
		}
		for len(cgroupProcs(p)) > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if err := removeCgroupTree(p); err != nil {
			errs = append(errs, err)
		}
	}
	removeFiles(req.StateDir)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up lxc container %s: %w", req.ID, err)
	}
	return nil
}

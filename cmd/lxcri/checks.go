//go:build linux

package main

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	golxc "github.com/lxc/go-lxc"
	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/backend/lxc"
	"github.com/lxcri/lxcri/backend/lxcstart"
	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
)

const shimBinary = "containerd-shim-lxcri-v2"

// hostEnv is the environment of the real host.
func hostEnv() *checkEnv {
	cfg, err := runtime.LoadHostConfig()
	return &checkEnv{
		cfg:        cfg,
		cfgErr:     err,
		lookPath:   lookPath,
		output:     output,
		cgroupRoot: "/sys/fs/cgroup",
		cgroups:    func() (string, []string, error) { return cgroupLayout("/sys/fs/cgroup") },
	}
}

// lookPath is exec.LookPath, also in the sbin folders (zfs, zpool) a user's PATH may lack.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// hostChecks are the checks of `lxcri check`, in the order they print.
func hostChecks() []check {
	return []check{
		{backend: "host", name: "configuration", run: checkConfig},
		{backend: "host", name: "shim", run: checkShim},
		{backend: "host", name: "cgroups", run: checkCgroups},
		{backend: "lxc", name: "liblxc", run: checkLiblxc},
		{backend: "lxc", name: "start helper", run: checkHelper},
		{backend: "crun", name: "runtime binaries", slow: true, run: checkRuntimes},
		{backend: "crun", name: "hybrid cgroups", run: checkCrunHybrid},
		{backend: "zfs", name: "pool and dataset", slow: true, run: checkZFS},
		{backend: "checkpoint", name: "CRIU", slow: true, run: checkCRIU},
		{backend: "proxmox", name: "PVE", slow: true, run: checkProxmox},
	}
}

func res(c, name string, s Status, detail, fix string) Result {
	return Result{Backend: c, Name: name, Status: s, Detail: detail, Fix: fix}
}

func configPath() string {
	if p := os.Getenv(runtime.ConfigPathEnv); p != "" {
		return p
	}
	return runtime.DefaultConfigPath
}

func checkConfig(ctx context.Context, env *checkEnv) []Result {
	p := configPath()
	if env.cfgErr != nil {
		return []Result{res("host", "configuration", Fail, env.cfgErr.Error(), "correct "+p+" (lxcri config shows what the shim reads)")}
	}
	if _, err := os.Stat(p); err != nil {
		return []Result{res("host", "configuration", OK, p+" is absent: built-in defaults (backend "+env.cfg.Backend+")", "")}
	}
	if err := runtime.ValidateBackend(env.cfg.Backend); err != nil {
		return []Result{res("host", "configuration", Fail, p+": "+err.Error(), "set backend in "+p+" to one of "+strings.Join(runtime.KnownBackends, ", "))}
	}
	return []Result{res("host", "configuration", OK, p+", default backend "+env.cfg.Backend, "")}
}

func checkShim(ctx context.Context, env *checkEnv) []Result {
	p, err := env.lookPath(shimBinary)
	if err != nil {
		return []Result{res("host", "shim", Fail, shimBinary+" is not on PATH", "make install (containerd finds the shim on its PATH, or set runtime_path in its config)")}
	}
	return []Result{res("host", "shim", OK, p, "")}
}

// cgroupLayout says how cgroups are mounted: "v2" (unified), "hybrid" (v1 hierarchies and
// a cgroup2 mount at unified/) or "v1", and the controllers the cgroup2 mount holds.
func cgroupLayout(root string) (layout string, v2controllers []string, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return "", nil, err
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		b, _ := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
		return "v2", strings.Fields(string(b)), nil
	}
	uni := filepath.Join(root, "unified")
	if err := unix.Statfs(uni, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		b, _ := os.ReadFile(filepath.Join(uni, "cgroup.controllers"))
		return "hybrid", strings.Fields(string(b)), nil
	}
	return "v1", nil, nil
}

func checkCgroups(ctx context.Context, env *checkEnv) []Result {
	layout, ctrls, err := env.cgroups()
	if err != nil {
		return []Result{res("host", "cgroups", Fail, err.Error(), "mount cgroups at "+env.cgroupRoot)}
	}
	switch layout {
	case "v2":
		return []Result{res("host", "cgroups", OK, "v2 (unified), controllers: "+strings.Join(ctrls, " "), "")}
	case "hybrid":
		return []Result{res("host", "cgroups", OK, "v1 hybrid (cgroup2 at "+filepath.Join(env.cgroupRoot, "unified")+" with controllers: "+orNone(ctrls)+")", "")}
	default:
		return []Result{res("host", "cgroups", OK, "v1 (legacy)", "")}
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

// minLXC is the oldest liblxc the lxc backend's configuration keys work with
// (lxc.cgroup.dir.monitor and lxc.cgroup.dir.container came with 4.0).
var minLXC = [2]int{4, 0}

func checkLiblxc(ctx context.Context, env *checkEnv) []Result {
	v := golxc.Version()
	maj, min, ok := majorMinor(v)
	if !ok {
		return []Result{res("lxc", "liblxc", Warn, "version "+v+" not understood", "")}
	}
	if maj < minLXC[0] || (maj == minLXC[0] && min < minLXC[1]) {
		return []Result{res("lxc", "liblxc", Fail, "version "+v+", older than 4.0", "install LXC 4.0 or later (Debian 12: apt-get install lxc)")}
	}
	return []Result{res("lxc", "liblxc", OK, "version "+v, "")}
}

var versionRe = regexp.MustCompile(`([0-9]+)\.([0-9]+)`)

func majorMinor(v string) (int, int, bool) {
	m := versionRe.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, false
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return a, b, true
}

// helperPath is where the lxc backend will look for lxcri-start: [lxc] helper, else beside
// the shim containerd runs (the first on PATH), else beside this program.
func helperPath(env *checkEnv) string {
	if env.cfg != nil && env.cfg.LXC.Helper != "" {
		return env.cfg.LXC.Helper
	}
	shim, err := env.lookPath(shimBinary)
	if err != nil {
		shim, _ = os.Executable()
	}
	if p, err := lxc.LocateHelper(shim); err == nil {
		return p
	}
	return filepath.Join(filepath.Dir(shim), lxcstart.Name)
}

func checkHelper(ctx context.Context, env *checkEnv) []Result {
	p := helperPath(env)
	fix := "make install (puts " + lxcstart.Name + " beside the shim), or set [lxc] helper"
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return []Result{res("lxc", "start helper", Fail, p+" is missing or not executable", fix)}
	}
	f, err := elf.Open(p)
	if err != nil {
		return []Result{res("lxc", "start helper", Fail, p+" is not an executable for this machine: "+err.Error(), fix)}
	}
	defer f.Close()
	libs, _ := f.ImportedLibraries()
	for _, l := range libs {
		if strings.HasPrefix(l, "liblxc.so") {
			return []Result{res("lxc", "start helper", OK, p+" (links "+l+")", "")}
		}
	}
	return []Result{res("lxc", "start helper", Fail, p+" does not link liblxc", "rebuild it: make helper")}
}

// runtimes are the runc-compatible CLIs the crun backend may drive.
var runtimes = []string{"crun", "runc", "youki"}

func crunBinary(env *checkEnv) string {
	if env.cfg != nil && env.cfg.Crun.Binary != "" {
		return env.cfg.Crun.Binary
	}
	return "crun"
}

func checkRuntimes(ctx context.Context, env *checkEnv) []Result {
	conf := crunBinary(env)
	names := append([]string(nil), runtimes...)
	if !contains(names, conf) {
		names = append(names, conf)
	}
	var out []Result
	for _, n := range names {
		configured := n == conf || filepath.Base(conf) == n && filepath.IsAbs(conf)
		target := n
		if configured {
			target = conf
		}
		p, err := env.lookPath(target)
		if err != nil {
			if configured {
				out = append(out, res("crun", n, Fail, "the configured [crun] binary "+conf+" is not found", "install it (Debian: apt-get install "+filepath.Base(conf)+") or set [crun] binary to an installed runtime"))
			} else {
				out = append(out, res("crun", n, Warn, "not installed (needed only with [crun] binary = \""+n+"\")", ""))
			}
			continue
		}
		v, err := env.output(ctx, p, "--version")
		first := firstLine(v)
		if err != nil {
			out = append(out, res("crun", n, Fail, p+" --version failed: "+first, "reinstall "+n))
			continue
		}
		note := ""
		if configured {
			note = " (the crun backend's [crun] binary)"
		}
		out = append(out, res("crun", n, OK, p+": "+first+note, ""))
	}
	return out
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// checkCrunHybrid: crun refuses a hybrid host whose cgroup2 mount holds controllers
// ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"). runc and
// liblxc do not mind.
func checkCrunHybrid(ctx context.Context, env *checkEnv) []Result {
	layout, ctrls, err := env.cgroups()
	if err != nil || layout != "hybrid" || len(ctrls) == 0 {
		return []Result{res("crun", "hybrid cgroups", OK, "no controller on a hybrid host's cgroup2 mount", "")}
	}
	conf := crunBinary(env)
	detail := "hybrid host with controllers on cgroup2 (" + strings.Join(ctrls, " ") + "): crun fails with \"cgroups in hybrid mode not supported, drop all controllers from cgroupv2\""
	var fix []string
	for _, c := range ctrls {
		dir := filepath.Join(env.cgroupRoot, c)
		fix = append(fix, fmt.Sprintf("mkdir -p %s && mount -t cgroup -o %s cgroup %s   (moves %s to a v1 hierarchy; machine-wide)", dir, c, dir, c))
	}
	fix = append(fix, `or drive runc instead: [crun] binary = "runc"`)
	st := Warn
	if filepath.Base(conf) == "crun" {
		st = Fail
		detail += "; [crun] binary is " + conf
	}
	return []Result{res("crun", "hybrid cgroups", st, detail, strings.Join(fix, "\n"))}
}

func checkCRIU(ctx context.Context, env *checkEnv) []Result {
	s := zfsroot.CRIUStatus(ctx)
	if strings.HasPrefix(s, "criu check passed") {
		return []Result{res("checkpoint", "CRIU", OK, s, "")}
	}
	return []Result{res("checkpoint", "CRIU", Warn, s+": checkpoints hold the root filesystem (ZFS), not the processes; a restored container starts its process afresh",
		"nothing to do for filesystem checkpoints; process state needs a kernel and criu that pass `criu check`")}
}

func checkZFS(ctx context.Context, env *checkEnv) []Result {
	if env.cfg == nil || env.cfg.ZFS.Dataset == "" {
		return []Result{res("zfs", "pool and dataset", Warn, "no [zfs] dataset: checkpoint and restore are off (NotImplemented)",
			"create a pool and set [zfs] dataset = \"POOL/lxcri\" in "+configPath())}
	}
	ds := env.cfg.ZFS.Dataset
	pool, _, _ := strings.Cut(ds, "/")
	zfsBin, err := env.lookPath("zfs")
	if err != nil {
		return []Result{res("zfs", "pool and dataset", Fail, "[zfs] dataset is "+ds+" but zfs is not installed", "apt-get install zfsutils-linux (OpenZFS)")}
	}
	zpoolBin, err := env.lookPath("zpool")
	if err != nil {
		return []Result{res("zfs", "pool and dataset", Fail, "zpool is not installed", "apt-get install zfsutils-linux (OpenZFS)")}
	}
	out, err := env.output(ctx, zpoolBin, "list", "-H", "-o", "name,health", pool)
	if err != nil {
		return []Result{res("zfs", "pool and dataset", Fail, "pool "+pool+" of [zfs] dataset "+ds+": "+firstLine(out),
			"create or import pool "+pool+" (zpool create / zpool import), or correct [zfs] dataset")}
	}
	health := ""
	if f := strings.Fields(out); len(f) > 1 {
		health = f[1]
	}
	var rs []Result
	if health != "" && health != "ONLINE" {
		rs = append(rs, res("zfs", "pool", Fail, "pool "+pool+" is "+health, "zpool status "+pool))
	}
	// lxcri drives zfs through github.com/mistifyio/go-zfs, which uses OpenZFS's command
	// line (list -p); an older zfs (zfs-fuse) fails every call.
	if out, err := env.output(ctx, zfsBin, "list", "-Hp", "-o", "name,used,avail", pool); err != nil {
		rs = append(rs, res("zfs", "command line", Fail, zfsBin+" does not speak OpenZFS's command line (zfs list -p: "+firstLine(out)+")",
			"install OpenZFS (zfsutils-linux); with zfs-fuse put a translation layer for zfs list -p first on containerd's PATH"))
	}
	out, err = env.output(ctx, zfsBin, "list", "-H", "-o", "name,mountpoint", ds)
	if err != nil {
		if len(rs) == 0 {
			rs = append(rs, res("zfs", "pool and dataset", OK, "pool "+pool+" "+health+"; dataset "+ds+" does not exist yet (the first container creates it)", ""))
		}
		return rs
	}
	if len(rs) == 0 {
		f := strings.Fields(out)
		mp := ""
		if len(f) > 1 {
			mp = ", mounted at " + f[1]
		}
		rs = append(rs, res("zfs", "pool and dataset", OK, "pool "+pool+" "+health+"; dataset "+ds+mp, ""))
	}
	return rs
}

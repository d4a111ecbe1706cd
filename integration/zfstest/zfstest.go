//go:build linux

// Package zfstest gives tests a real, throw-away ZFS pool on hosts without kernel ZFS.
//
// Pool starts the zfs-fuse daemon in the background when it is not running (and stops it
// again once the last test pool is gone), creates a pool on a sparse file in a temporary
// folder, and puts lxcri's zfs-fuse translation layer (compat/zfs, compat/zpool) first on
// the test's PATH, so that github.com/mistifyio/go-zfs/v4, which speaks the OpenZFS command
// line, works against zfs-fuse 0.7.0. Cleanup destroys the pool, removes the folder and
// fails the test when a mount or the pool is left behind.
//
// Nothing here skips a test: without root, /dev/fuse or zfs-fuse the test fails and says to
// run `make setup`.
//
// Several test binaries may use zfs-fuse at once (go test runs packages in parallel): the
// daemon is shared, starting and stopping it is serialised with an flock on the zfs-fuse
// executable, and the daemon is stopped only by the last user, that is when no pool is left
// and the daemon is one zfstest started (it carries LXCRI_ZFSTEST_DAEMON in its environment).
// Pools of test processes that died are destroyed by the next Pool.
package zfstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/lxcri/lxcri/integration/inherit"
)

// compat holds lxcri's zfs-fuse translation layer (see compat/zfs and compat/zpool).
//
//go:embed compat/zfs compat/zpool
var compat embed.FS

const (
	// DefaultSize is the size of a pool's (sparse) backing file.
	DefaultSize = 512 << 20
	// MinSize is the smallest pool zfs-fuse creates.
	MinSize = 64 << 20

	// PoolPrefix starts the name of every pool this package creates; the owning test
	// process's PID follows, so pools of dead processes can be told apart.
	PoolPrefix = "lxcrizt-"

	setupHint = "run `make setup` (or contrib/scripts/setup-host.sh)"

	// daemonMarker is set in the environment of a zfs-fuse daemon zfstest started.
	daemonMarker = "LXCRI_ZFSTEST_DAEMON"
	// runDirMarker says the daemon's start created zfs-fuse's run folder (runDir).
	runDirMarker = "LXCRI_ZFSTEST_RUNDIR_CREATED"
	// runDir is where zfs-fuse, a fixed path in its CLI, keeps its socket.
	runDir = "/var/run/zfs"

	cmdTimeout   = time.Minute
	startTimeout = 15 * time.Second
	// stopTimeout is how long a stopping zfs-fuse gets after SIGTERM before SIGKILL. It is
	// stopped only when no pool is imported, so there is nothing to lose, and it takes
	// seconds to end on SIGTERM.
	stopTimeout = time.Second
)

// Option changes how Pool makes a pool.
type Option func(*config)

type config struct {
	size int64
}

// WithSize sets the size of the pool's backing file (default DefaultSize, at least MinSize).
func WithSize(bytes int64) Option {
	return func(c *config) { c.size = bytes }
}

// Pool returns the name of a new, empty pool mounted in a temporary folder, and a cleanup
// function, also registered with t.Cleanup (calling it more than once is harmless).
// For the rest of t, PATH starts with the translation layer (so Pool uses t.Setenv and
// cannot be used in parallel tests); LXCRI_ZFS_REAL and LXCRI_ZPOOL_REAL name the real zfs
// and zpool for it.
func Pool(t testing.TB, opts ...Option) (string, func()) {
	t.Helper()
	cfg := config{size: DefaultSize}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.size < MinSize {
		t.Fatalf("zfstest: pool size %d is below zfs-fuse's minimum of %d bytes", cfg.size, MinSize)
	}
	tools := lookTools(t)

	dir, err := os.MkdirTemp("", "lxcri-zfstest-")
	if err != nil {
		t.Fatalf("zfstest: %v", err)
	}
	bin := filepath.Join(dir, "bin")
	if err := installCompat(bin); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("zfstest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // when Pool fails below; cleanup removes it too

	// first, as t.Setenv panics in parallel tests
	t.Setenv("LXCRI_ZFS_REAL", tools.zfs)
	t.Setenv("LXCRI_ZPOOL_REAL", tools.zpool)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	name := PoolPrefix + strconv.Itoa(os.Getpid()) + "-" + randHex(4)
	img := filepath.Join(dir, "pool.img")
	mnt := filepath.Join(dir, "mnt")
	create := func() error {
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			return err
		}
		if err := os.Truncate(img, cfg.size); err != nil {
			return err
		}
		// cachefile=none: nothing is written to /etc/zfs/zpool.cache, and a pool whose
		// daemon dies is not imported again by the next one.
		_, err := run(tools.zpool, "create", "-o", "cachefile=none", "-m", mnt, name, img)
		return err
	}
	if err := acquireDaemon(t, tools, dir, create); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("zfstest: pool %s: %v", name, err)
	}

	var once sync.Once
	cleanup := func() {
		once.Do(func() {
			t.Helper()
			releaseDaemon(t, tools, name)
			if left := mountsUnder(mnt); len(left) > 0 {
				t.Errorf("zfstest: mounts left under %s after destroying pool %s: %v", mnt, name, left)
				for _, m := range left {
					_ = syscall.Unmount(m, syscall.MNT_DETACH)
				}
			}
			if err := os.RemoveAll(dir); err != nil {
				t.Errorf("zfstest: %v", err)
			}
		})
	}
	t.Cleanup(cleanup)
	return name, cleanup
}

// Mountpoint returns where pool's root dataset is mounted.
func Mountpoint(t testing.TB, pool string) string {
	t.Helper()
	tools := lookTools(t)
	out, err := run(tools.zfs, "get", "-H", "-o", "value", "mountpoint", pool)
	if err != nil {
		t.Fatalf("zfstest: %v", err)
	}
	return strings.TrimSpace(out)
}

// Datasets lists every filesystem, volume and snapshot of pool (the pool itself included)
// with the real zfs, so that it does not depend on the translation layer.
func Datasets(t testing.TB, pool string) []string {
	t.Helper()
	tools := lookTools(t)
	out, err := run(tools.zfs, "list", "-H", "-r", "-t", "all", "-o", "name", pool)
	if err != nil {
		t.Fatalf("zfstest: %v", err)
	}
	return strings.Fields(out)
}

// Mounts lists the mount points at or below dir.
func Mounts(dir string) []string { return mountsUnder(dir) }

type tools struct{ daemon, zfs, zpool string }

func lookTools(t testing.TB) tools {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("zfstest: ZFS tests need root (zfs-fuse mounts and its socket in %s)", runDir)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("zfstest: zfs-fuse needs /dev/fuse: %v", err)
	}
	var tl tools
	for _, p := range []struct {
		dst  *string
		name string
	}{{&tl.daemon, "zfs-fuse"}, {&tl.zfs, "zfs"}, {&tl.zpool, "zpool"}} {
		path, err := lookReal(p.name)
		if err != nil {
			t.Fatalf("zfstest: %s not found (%v): %s", p.name, err, setupHint)
		}
		*p.dst = path
	}
	return tl
}

// lookReal finds name on PATH, then in the sbin folders (PATH of a test may lack them),
// skipping the translation layer of an enclosing Pool.
func lookReal(name string) (string, error) {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	dirs = append(dirs, "/usr/local/sbin", "/usr/sbin", "/sbin")
	for _, d := range dirs {
		if d == "" || strings.HasPrefix(filepath.Base(filepath.Dir(d)), "lxcri-zfstest-") {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func installCompat(bin string) error {
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"zfs", "zpool"} {
		b, err := compat.ReadFile("compat/" + name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(bin, name), b, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// daemon is this process's share of the zfs-fuse daemon.
var daemon struct {
	mu    sync.Mutex
	users int       // Pools of this process
	cmd   *exec.Cmd // the daemon, when this process started it
}

// withLock runs fn holding the flock that serialises zfstest's daemon starts, pool
// creation and daemon stops across processes. The lock is on the zfs-fuse executable,
// which exists whenever zfstest can work, so no lock file is created or left behind.
func withLock(tl tools, fn func() error) error {
	f, err := os.Open(tl.daemon)
	if err != nil {
		return err
	}
	defer f.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			return fmt.Errorf("lock %s: %w", tl.daemon, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck
	return fn()
}

// acquireDaemon makes sure a zfs-fuse daemon answers, starting one when none runs,
// destroys pools whose test process is gone, and runs create (which makes the pool) while
// still holding the lock, so no other process stops the daemon in between.
func acquireDaemon(t testing.TB, tl tools, logDir string, create func() error) error {
	daemon.mu.Lock()
	defer daemon.mu.Unlock()
	return withLock(tl, func() error {
		if err := startDaemon(t, tl, logDir); err != nil {
			return err
		}
		reapOrphanPools(t, tl)
		if err := create(); err != nil {
			if daemon.users == 0 {
				if err := stopIdleDaemon(t, tl); err != nil {
					t.Logf("zfstest: %v", err)
				}
			}
			return err
		}
		daemon.users++
		return nil
	})
}

// startDaemon starts zfs-fuse unless one answers already.
func startDaemon(t testing.TB, tl tools, logDir string) error {
	if daemonUp(tl) {
		return nil
	}
	if pid := daemonPID(); pid > 0 {
		// running but not answering yet (starting): wait for it
		if waitUp(tl, pid, startTimeout) {
			return nil
		}
		return fmt.Errorf("zfs-fuse (pid %d) runs but does not answer on %s", pid, runDir)
	}
	// A daemon just stopped may still hold its lock: its main thread is reaped before the
	// threads that are still finishing FUSE requests let go of the lock file, and a new
	// daemon that finds the lock taken exits at once (saying so only to syslog).
	if err := waitLockFree(daemonLockFile, startTimeout); err != nil {
		return err
	}
	_, statErr := os.Stat(runDir)
	log, err := os.Create(filepath.Join(logDir, "zfs-fuse.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	inherit.CloseOnExec()
	cmd := exec.Command(tl.daemon, "--no-daemon", "--no-kstat-mount")
	cmd.Env = append(os.Environ(), daemonMarker+"=1")
	if os.IsNotExist(statErr) {
		cmd.Env = append(cmd.Env, runDirMarker+"=1")
	}
	cmd.Stdout, cmd.Stderr = log, log
	// own session: a ^C to the test does not reach the daemon before cleanup ran
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start zfs-fuse: %w (%s)", err, setupHint)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(startTimeout)
	for !daemonUp(tl) {
		select {
		case <-exited:
			b, _ := os.ReadFile(log.Name())
			return fmt.Errorf("zfs-fuse exited at start (%v): %s", cmd.ProcessState, bytes.TrimSpace(b))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			b, _ := os.ReadFile(log.Name())
			return fmt.Errorf("zfs-fuse did not answer within %v: %s", startTimeout, bytes.TrimSpace(b))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("zfstest: started zfs-fuse, pid %d", cmd.Process.Pid)
	daemon.cmd = cmd
	return nil
}

// releaseDaemon destroys pool (when not empty) and stops the daemon when zfstest started
// it and no pool is left.
func releaseDaemon(t testing.TB, tl tools, pool string) {
	t.Helper()
	daemon.mu.Lock()
	defer daemon.mu.Unlock()
	err := withLock(tl, func() error {
		daemon.users--
		if pool != "" {
			if err := destroyPool(tl, pool); err != nil {
				t.Errorf("zfstest: %v", err)
			}
			if out, _ := run(tl.zpool, "list", "-H", "-o", "name"); containsLine(out, pool) {
				t.Errorf("zfstest: pool %s still listed after destroy", pool)
			}
		}
		if daemon.users > 0 {
			return nil
		}
		return stopIdleDaemon(t, tl)
	})
	if err != nil {
		t.Errorf("zfstest: %v", err)
	}
}

// stopIdleDaemon stops the daemon when no pool is left and zfstest started it.
func stopIdleDaemon(t testing.TB, tl tools) error {
	out, err := run(tl.zpool, "list", "-H", "-o", "name")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return nil // someone else's pools
	}
	return stopDaemon(t)
}

func destroyPool(tl tools, pool string) error {
	var err error
	for i := 0; i < 50; i++ { // zfs-fuse: "pool is busy" right after the last destroy
		if _, err = run(tl.zpool, "destroy", "-f", pool); err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "busy") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("destroy pool %s: %w", pool, err)
}

// stopDaemon stops a zfs-fuse that zfstest started (in this process or in one that is gone).
func stopDaemon(t testing.TB) error {
	pid := daemonPID()
	if pid <= 0 {
		daemon.cmd = nil
		return nil
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	vars := strings.Split(string(env), "\x00")
	if !containsLine(strings.Join(vars, "\n"), daemonMarker+"=1") {
		return nil // not ours
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop zfs-fuse %d: %w", pid, err)
	}
	deadline, killed := time.Now().Add(stopTimeout), false
	for alive(pid) { // the daemon's parent (this process or init) reaps it
		if time.Now().After(deadline) {
			if killed {
				return fmt.Errorf("zfs-fuse %d survives SIGKILL", pid)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline, killed = time.Now().Add(time.Minute), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	daemon.cmd = nil
	// a killed daemon leaves its socket behind
	if fi, err := os.Lstat(filepath.Join(runDir, "zfs_socket")); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(filepath.Join(runDir, "zfs_socket"))
	}
	if containsLine(strings.Join(vars, "\n"), runDirMarker+"=1") {
		_ = os.Remove(runDir) // only when empty
	}
	t.Logf("zfstest: stopped zfs-fuse, pid %d (%s)", pid, map[bool]string{false: "SIGTERM", true: "SIGKILL"}[killed])
	return nil
}

// daemonLockFile is the file zfs-fuse holds a POSIX lock on while it runs.
const daemonLockFile = "/var/lock/zfs/zfs_lock"

// waitLockFree waits until no process holds a POSIX lock on path (a missing file is free).
func waitLockFree(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		holder, err := lockHolder(path)
		if err != nil || holder == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is still locked by pid %d, a zfs-fuse that does not end", path, holder)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockHolder returns the pid holding a POSIX write lock on path, or 0.
func lockHolder(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return 0, fmt.Errorf("query the lock on %s: %w", path, err)
	}
	if lk.Type == syscall.F_UNLCK {
		return 0, nil
	}
	return int(lk.Pid), nil
}

// alive says whether pid runs (a zombie does not: its parent reaps it).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// daemonPID returns the PID of a running zfs-fuse, or 0.
func daemonPID() int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == "zfs-fuse" && alive(pid) {
			return pid
		}
	}
	return 0
}

func daemonUp(tl tools) bool {
	_, err := run(tl.zpool, "list", "-H", "-o", "name")
	return err == nil
}

func waitUp(tl tools, pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && alive(pid) {
		if daemonUp(tl) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

var orphanPool = regexp.MustCompile(`^` + regexp.QuoteMeta(PoolPrefix) + `([0-9]+)-[0-9a-f]+$`)

// reapOrphanPools destroys the pools of test processes that are gone, and their folders.
func reapOrphanPools(t testing.TB, tl tools) {
	out, err := run(tl.zpool, "list", "-H", "-o", "name")
	if err != nil {
		return
	}
	for _, pool := range strings.Fields(out) {
		m := orphanPool.FindStringSubmatch(pool)
		if m == nil {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); alive(pid) {
			continue
		}
		mp, _ := run(tl.zfs, "get", "-H", "-o", "value", "mountpoint", pool)
		if err := destroyPool(tl, pool); err != nil {
			t.Logf("zfstest: orphaned pool: %v", err)
			continue
		}
		t.Logf("zfstest: destroyed pool %s of a test process that is gone", pool)
		dir := filepath.Dir(strings.TrimSpace(mp))
		if strings.HasPrefix(filepath.Base(dir), "lxcri-zfstest-") && len(mountsUnder(dir)) == 0 {
			_ = os.RemoveAll(dir)
		}
	}
}

func containsLine(out, line string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range infos {
		out = append([]string{m.Mountpoint}, out...)
	}
	return out
}

func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

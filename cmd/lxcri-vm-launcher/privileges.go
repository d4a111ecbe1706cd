package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/backend/proxmoxvm/launchspec"
)

// A Go program cannot run code between fork and exec, and capabilities, keep-caps and
// no_new_privs belong to a thread, not to the process. So the supervisor starts the
// launcher again as "init DIR": it sets everything up on one locked thread and executes
// the process from that thread, whose credentials execve carries over. The init keeps the
// pid the supervisor recorded, and reports a failure before the exec on fd 3, which the
// exec closes.

// privileges are the capability masks and limits a process gets.
type privileges struct {
	bounding, effective, inheritable, permitted, ambient uint64
	noNewPrivs                                           bool
	rlimits                                              []rlimit
}

type rlimit struct {
	resource   int
	soft, hard uint64
}

// privilegesOf maps the config's names onto masks and resource numbers; nil capabilities
// are empty sets.
func privilegesOf(cfg *Config) (*privileges, error) {
	p := &privileges{noNewPrivs: cfg.NoNewPrivileges}
	if c := cfg.Capabilities; c != nil {
		for _, s := range []struct {
			name  string
			names []string
			mask  *uint64
		}{{"bounding", c.Bounding, &p.bounding}, {"effective", c.Effective, &p.effective},
			{"inheritable", c.Inheritable, &p.inheritable}, {"permitted", c.Permitted, &p.permitted},
			{"ambient", c.Ambient, &p.ambient}} {
			m, err := launchspec.Mask(s.names)
			if err != nil {
				return nil, fmt.Errorf("capabilities.%s: %w", s.name, err)
			}
			*s.mask = m
		}
	}
	for _, r := range cfg.Rlimits {
		res, ok := launchspec.Rlimits[r.Type]
		if !ok {
			return nil, fmt.Errorf("rlimits: unknown type %s", r.Type)
		}
		p.rlimits = append(p.rlimits, rlimit{res, r.Soft, r.Hard})
	}
	return p, nil
}

// lastCap is the highest capability the running kernel knows: PR_CAPBSET_READ fails
// past it. Capabilities above it are left out, as runc does.
func lastCap() int {
	c := 0
	for ; c < 63; c++ {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c+1), 0, 0, 0); err != nil {
			break
		}
	}
	return c
}

// initProcess is "init DIR": it becomes the process DIR/config.json describes.
func initProcess(dir string) error {
	report := os.NewFile(3, "report")
	err := becomeProcess(dir)
	// only reached when something failed before or in the exec
	if report != nil {
		report.WriteString(err.Error())
		report.Close()
	}
	return err
}

func becomeProcess(dir string) error {
	runtime.LockOSThread() // never unlocked: the exec happens on this thread
	syscall.CloseOnExec(3)
	cfg, err := readConfig(dir)
	if err != nil {
		return err
	}
	priv, err := privilegesOf(cfg)
	if err != nil {
		return err
	}
	prog, err := lookPath(cfg.Root, cfg.Args[0], cfg.Env)
	if err != nil {
		return err
	}
	// runc's order: rlimits; the bounding set while still root with every capability;
	// the user with keep-caps so the permitted set survives a change away from uid 0;
	// then the capability sets, the ambient set, and no_new_privs last
	for _, r := range priv.rlimits {
		if err := unix.Setrlimit(r.resource, &unix.Rlimit{Cur: r.soft, Max: r.hard}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", r.resource, err)
		}
	}
	if err := unix.Chroot(cfg.Root); err != nil {
		return fmt.Errorf("chroot %s: %w", cfg.Root, err)
	}
	cwd := cfg.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("chdir %s: %w", cwd, err)
	}
	last := lastCap()
	if err := applyBounding(priv.bounding, last); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep caps: %w", err)
	}
	if err := setUser(cfg); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keep caps: %w", err)
	}
	if err := applyCaps(priv, last); err != nil {
		return err
	}
	if priv.noNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	return fmt.Errorf("exec %s: %w", prog, unix.Exec(prog, cfg.Args, cfg.Env))
}

func applyBounding(mask uint64, last int) error {
	for c := 0; c <= last; c++ {
		if mask&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// setUser changes this thread's groups, gid and uid with raw system calls: the exec that
// follows is made from this thread, and the Go wrappers would change every thread's.
func setUser(cfg *Config) error {
	groups := make([]uint32, len(cfg.Groups))
	copy(groups, cfg.Groups)
	var gp uintptr
	if len(groups) > 0 {
		gp = uintptr(unsafe.Pointer(&groups[0]))
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), gp, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGID, uintptr(cfg.GID), 0, 0); e != 0 {
		return fmt.Errorf("setgid %d: %w", cfg.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETUID, uintptr(cfg.UID), 0, 0); e != 0 {
		return fmt.Errorf("setuid %d: %w", cfg.UID, e)
	}
	return nil
}

func applyCaps(p *privileges, last int) error {
	known := uint64(1)<<uint(last+1) - 1
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := range data {
		data[i].Effective = uint32((p.effective & known) >> (32 * i))
		data[i].Permitted = uint32((p.permitted & known) >> (32 * i))
		data[i].Inheritable = uint32((p.inheritable & known) >> (32 * i))
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear the ambient set: %w", err)
	}
	for c := 0; c <= last; c++ {
		if p.ambient&(1<<uint(c)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %d: %w", c, err)
		}
	}
	return nil
}

package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// freezable is what KillAll needs of a cgroup of either version.
type freezable interface {
	Pids(ctx context.Context) ([]int, error)
	Freeze(ctx context.Context) error
	Thaw(ctx context.Context) error
	// frozen tells whether the cgroup is frozen (paused) now.
	frozen() (bool, error)
}

// signalFrozen signals every process of c with the cgroup frozen, so that no process forks
// a child that misses the signal (runc's signalAllProcesses). A cgroup the caller had paused
// stays paused, except after SIGKILL: a frozen v1 task cannot die until thawed.
func signalFrozen(ctx context.Context, c freezable, sig syscall.Signal) error {
	wasFrozen, err := c.frozen()
	if err != nil {
		return err
	}
	if !wasFrozen {
		if err := c.Freeze(ctx); err != nil {
			return err
		}
	}
	sigErr := signalPids(ctx, c, sig)
	if !wasFrozen || sig == syscall.SIGKILL {
		if err := c.Thaw(ctx); err != nil {
			return errors.Join(sigErr, err)
		}
	}
	return sigErr
}

// signalPids sends sig to every process listed in the cgroup; processes that exit meanwhile
// are not an error.
func signalPids(ctx context.Context, c freezable, sig syscall.Signal) error {
	pids, err := c.Pids(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("signal %d to pid %d: %w", sig, pid, err))
		}
	}
	return errors.Join(errs...)
}

// KillAllWait kills every process of c with SIGKILL and waits, at most d, until none is
// left running. A zombie counts as gone: it has ended and only waits for its parent. It is
// what a container without a pid namespace of its own needs when its init dies (the
// kernel ends a namespace's processes only with that namespace's init): the processes left
// are gone before the init's exit is reported, as containerd's runc shim does.
func KillAllWait(ctx context.Context, c Cgroup, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		pids, err := c.Pids(ctx)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil // the cgroup went with its last process
			}
			return err
		}
		live := running(pids)
		if len(live) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still run %v after SIGKILL: %w", live, d, errdefs.ErrUnavailable)
		}
		if err := c.KillAll(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		waitGone(live, time.Until(deadline))
	}
}

// running keeps the pids that are neither gone nor zombies.
func running(pids []int) []int {
	var out []int
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// state is the first field after the command name, which is in parentheses
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X') {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// waitGone waits, at most d, until every pid has ended (a pidfd is readable once its
// process has exited, reaped or not).
func waitGone(pids []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone already
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			ms := int(time.Until(deadline).Milliseconds())
			if ms <= 0 {
				break
			}
			if _, err := unix.Poll(fds, ms); err != unix.EINTR {
				break
			}
		}
		unix.Close(fd)
	}
}

package cgroups

import (
	"context"
	"errors"
	"fmt"
	"syscall"
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

package zfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLockDir holds the lock files of Stores whose LockDir is empty. It is on /run:
// the lock is for the processes of one host (every shim and the lxcri command), which
// share a pool.
const DefaultLockDir = "/run/lxcri/zfs-locks"

const lockPoll = 5 * time.Millisecond

func (s *Store) lockDir() string {
	if s.LockDir != "" {
		return s.LockDir
	}
	return DefaultLockDir
}

// lock takes the host-wide lock of dataset name (an flock of a file named after it in
// LockDir) and returns its release. It waits for another holder as long as ctx lets it.
func (s *Store) lock(ctx context.Context, op, name string) (func(), error) {
	dir := s.lockDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, wrap(op, name, fmt.Errorf("lock: %w", err))
	}
	sum := sha256.Sum256([]byte(name))
	f, err := os.OpenFile(filepath.Join(dir, hex.EncodeToString(sum[:16])+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, wrap(op, name, fmt.Errorf("lock: %w", err))
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			// The file stays: removing it would let a process that opened it before
			// hold a lock on a file the next one no longer finds.
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, wrap(op, name, fmt.Errorf("lock: %w", err))
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, wrap(op, name, fmt.Errorf("waiting for the lock: %w", ctx.Err()))
		}
	}
}

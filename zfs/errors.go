package zfs

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	gozfs "github.com/mistifyio/go-zfs/v4"
)

// Error is what every Store method returns on failure: the operation, the dataset or
// snapshot it was about, what zfs (or the system) said, and an errdefs sentinel for the
// kind of failure, so errdefs.IsNotFound and friends (and the shim's gRPC codes) work:
//
//	NotFound            the dataset, snapshot, parent or pool does not exist
//	AlreadyExists       the dataset or snapshot exists already
//	FailedPrecondition  the pool is full ("out of space", ENOSPC), the dataset stays busy,
//	                    a snapshot has dependent clones, newer snapshots block a rollback
//	InvalidArgument     a bad dataset, snapshot or property name
//	PermissionDenied    not allowed (not root, or delegation refused)
//	Unavailable         no zfs command or no ZFS (kernel module or zfs-fuse daemon)
//
// A context that ends first gives an Error wrapping context.Canceled or DeadlineExceeded.
type Error struct {
	Op   string // create, snapshot, clone, rollback, send, receive, destroy, ...
	Name string // the dataset or snapshot
	Msg  string // what zfs said, on one line
	Kind error  // the errdefs sentinel, nil when unknown
	Err  error  // the underlying error: *gozfs.Error, a context error, the populate error, ...
}

func (e *Error) Error() string {
	s := "zfs " + e.Op + " " + e.Name + ": " + e.Msg
	if e.Kind != nil && !strings.HasSuffix(e.Msg, e.Kind.Error()) {
		s += ": " + e.Kind.Error()
	}
	return s
}

// Unwrap gives errors.Is/As both the sentinel and the underlying error.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// wrap turns err from op on name into an *Error (nil stays nil; an *Error is kept).
func wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	msg := err.Error()
	var ze *gozfs.Error
	if errors.As(err, &ze) {
		msg = oneLine(ze.Stderr)
		if msg == "" {
			msg = ze.Err.Error()
		}
	}
	return &Error{Op: op, Name: name, Msg: msg, Kind: kindOf(msg, err), Err: err}
}

// kindOf maps what zfs said (OpenZFS and zfs-fuse word it alike) to an errdefs sentinel.
func kindOf(msg string, err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil // errdefs.IsCanceled / IsDeadlineExceeded see the context error
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return errdefs.ErrFailedPrecondition
	case errors.Is(err, exec.ErrNotFound):
		return errdefs.ErrUnavailable
	}
	m := strings.ToLower(msg)
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(m, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("out of space", "no space left", "quota exceeded"):
		return errdefs.ErrFailedPrecondition
	case has("does not exist", "no such pool", "could not find any snapshots"):
		return errdefs.ErrNotFound
	case has("already exists", "destination '", "must specify -f to overwrite"):
		return errdefs.ErrAlreadyExists
	case has("is busy", "has dependent clones", "has children", "more recent snapshots",
		"is not mounted", "not currently mounted", "pool i/o is currently suspended"):
		return errdefs.ErrFailedPrecondition
	case has("permission denied", "operation not permitted", "insufficient privileges"):
		return errdefs.ErrPermissionDenied
	case has("failed to initialize zfs library", "zfs-fuse daemon is running", "/dev/zfs",
		"the zfs modules are not loaded"):
		return errdefs.ErrUnavailable
	case has("invalid", "bad property", "name is too long", "missing ", "usage:", "leading slash",
		"empty component", "multiple '@'", "trailing slash"):
		return errdefs.ErrInvalidArgument
	}
	return nil
}

// isBusy says whether zfs refused because the dataset (or pool) was busy for a moment.
func isBusy(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	var ze *gozfs.Error
	if !errors.As(e.Err, &ze) {
		return false
	}
	return strings.Contains(strings.ToLower(e.Msg), "is busy")
}

func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

func invalid(op, name, msg string) error {
	return &Error{Op: op, Name: name, Msg: msg, Kind: errdefs.ErrInvalidArgument}
}

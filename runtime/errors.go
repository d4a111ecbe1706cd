package runtime

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// FieldError says which field of the OCI spec a backend cannot honour, and why. Every
// backend refuses a spec it cannot run with one, so that the client learns the field
// (containerd passes the message through) and gets InvalidArgument: it wraps
// errdefs.ErrInvalidArgument.
type FieldError struct {
	// Field is the path of the field in the spec's JSON, e.g. "linux.resources.memory.swap"
	// or "mounts[3].options".
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return "OCI spec " + e.Field + ": " + e.Msg }
func (e *FieldError) Unwrap() error { return errdefs.ErrInvalidArgument }

// FieldErrorf makes a FieldError for field with a formatted reason.
func FieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

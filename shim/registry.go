package shim

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
)

// Factory makes a backend from the effective configuration.
type Factory func(ctx context.Context, cfg *runtime.Config) (runtime.Backend, error)

// Registry maps backend names to their factories. cmd/ builds it, so the shim package
// does not import any backend.
type Registry map[string]Factory

// New makes the named backend: an unknown name is InvalidArgument, a known one that is
// not built into this binary FailedPrecondition. (Not NotImplemented: containerd takes
// that answer to Create as "this shim speaks an older task API" and retries with it,
// hiding the reason.)
func (r Registry) New(ctx context.Context, name string, cfg *runtime.Config) (runtime.Backend, error) {
	if err := runtime.ValidateBackend(name); err != nil {
		return nil, err
	}
	f, ok := r[name]
	if !ok {
		return nil, fmt.Errorf("backend %q is not available in this build of lxcri: %w", name, errdefs.ErrFailedPrecondition)
	}
	return f(ctx, cfg)
}

package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

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

// backendCache builds each backend once per (name, configuration) and gives the same value
// to every container of the shim that routes to it: a Backend serves containers
// concurrently, and a remote one keeps its client and connections there.
type backendCache struct {
	reg   Registry
	mu    sync.Mutex
	built map[string]runtime.Backend
}

func newBackendCache(reg Registry) *backendCache {
	return &backendCache{reg: reg, built: map[string]runtime.Backend{}}
}

// get returns the backend for (name, cfg), building it the first time. A backend that
// fails to build is tried again next time (its binary may have been installed since).
func (c *backendCache) get(ctx context.Context, name string, cfg *runtime.Config) (runtime.Backend, error) {
	key, err := json.Marshal(struct {
		Name   string
		Config *runtime.Config
	}{name, cfg})
	if err != nil {
		return nil, fmt.Errorf("backend %s: configuration: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.built[string(key)]; ok {
		return b, nil
	}
	b, err := c.reg.New(ctx, name, cfg)
	if err != nil {
		return nil, err
	}
	c.built[string(key)] = b
	return b, nil
}

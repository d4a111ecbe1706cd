//go:build linux

package soak

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/lxcri/lxcri/integration/harness"
)

// syncBuffer is a bytes.Buffer the client's copy goroutines may write while a cycle reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func withNamespace(ctx context.Context, env *harness.Env) context.Context {
	return namespaces.WithNamespace(ctx, env.Namespace)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

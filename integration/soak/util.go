//go:build linux

package soak

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/lxcri/lxcri/integration/harness"
)

func withNamespace(ctx context.Context, env *harness.Env) context.Context {
	return namespaces.WithNamespace(ctx, env.Namespace)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

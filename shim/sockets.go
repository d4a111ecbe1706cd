package shim

import (
	"context"
	"flag"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
)

// socketDirLink is the link pkg/shim's start action leaves in the bundle, naming the
// folder containerd asked the shim sockets to be made in.
const socketDirLink = "s"

// groupSockets returns the sockets (task and debug) of a shim server that serves a group:
// the manager names them for the group, while pkg/shim removes on exit only the sockets
// named for its -id, the group's first task. Nil for a shim of one task, whose sockets are
// named for that task.
func groupSockets(ctx context.Context, bundle, id, grpcAddress string) []string {
	group, err := groupOf(bundle, id)
	if err != nil || group == id {
		return nil
	}
	socketDir, _ := os.Readlink(filepath.Join(bundle, socketDirLink))
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	var out []string
	for _, debug := range []bool{false, true} {
		if a, err := shim.CreateSocketAddress(ctx, socketDir, grpcAddress, group, debug); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// removeGroupSockets is a shutdown callback of a grouped shim server: it removes the
// group's sockets, which would otherwise stay behind in containerd's socket folder (read
// at start: the first task's bundle, the server's working folder, may be gone by then).
func removeGroupSockets(ctx context.Context, grpcAddress string) func(context.Context) error {
	bundle, err := os.Getwd()
	if err != nil {
		return nil
	}
	var id string
	if f := flag.Lookup("id"); f != nil {
		id = f.Value.String()
	}
	if id == "" {
		return nil
	}
	socks := groupSockets(ctx, bundle, id, grpcAddress)
	if len(socks) == 0 {
		return nil
	}
	return func(context.Context) error {
		for _, a := range socks {
			if err := shim.RemoveSocket(a); err != nil {
				log.G(ctx).WithError(err).Warnf("remove shim socket %s", a)
			}
		}
		return nil
	}
}

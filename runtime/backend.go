// Package runtime holds what every lxcri backend shares: the Backend, Container and Process
// interfaces the task service drives, stdio plumbing, exit tracking, cgroup metrics, rootfs
// mounting and configuration.
//
// A backend returns errors wrapped with errdefs sentinels (NotFound, InvalidArgument,
// FailedPrecondition, NotImplemented, ...); the shim converts them to gRPC codes once, at the
// service boundary, and a spec field it cannot honour is a *FieldError. A backend never
// imports the shim package.
//
// The task service keeps every process's state (created, running, paused, stopped,
// deleted) and checks each transition itself: a backend is asked to start a created
// process once, to pause only a running container, and so on, and keeps no guards of
// its own. It publishes the events too, in containerd's order.
//
// # Remote backends
//
// A backend whose containers run elsewhere (a Proxmox CT, a VM) implements the same
// interfaces and says so in Needs:
//   - HostRootfs false: the shim mounts nothing; CreateRequest.Mounts carries containerd's
//     mounts (Rootfs is empty) and the backend makes the root filesystem where the
//     container runs.
//   - HostPids false: Process.Pid is only the number containerd shows (and Exit.Pid the
//     same); the shim never signals or waits for it. It must be stable and non-zero once
//     the process runs.
//   - OwnsCheckpoints true: Container.Checkpoint stores the checkpoint (a snapshot) and
//     writes what finds it again into CheckpointRequest.Path, and a Create with
//     CreateRequest.Checkpoint set restores from that path; the shim's ZFS store is not
//     used.
//   - stdio: IO.Streams gives the process's stdin, stdout and stderr as streams to pump
//     over the backend's own transport (local backends hand fds to a child with IO.Set).
//   - exits: the backend closes Process.Done once it knows the process ended (polling its
//     API if it must); CreateRequest.Exits is for local children only.
//   - OOM may be nil, and a Container may offer OOMCount() (uint64, bool) to report kills
//     the shim publishes as TaskOOM before the init's TaskExit.
//   - errors: a spec field the backend cannot map is a *FieldError; an unreachable API is
//     Unavailable, a refused one says which permission is missing.
//   - configuration: its section of Config; a secret stays in a file the configuration
//     names, and any field that holds one is tagged `lxcri:"secret"`, so that the crash
//     record in the bundle (Config.Redacted) leaves it out.
//   - a Backend may offer Features(ctx) (*features.Features, error), which `-info` reports
//     to containerd for the runtime handlers that choose it.
//
// One Backend value serves every container of the shim built with the same (name,
// configuration), so a remote backend keeps its API client and connection there.
package runtime

import (
	"context"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Backend creates containers. One Backend value serves every container of a shim process
// that routes to it, so it must be safe for concurrent use.
type Backend interface {
	// Name is the configuration name of the backend ("lxc", "crun", ...).
	Name() string
	// Create makes the container and its init process ready to start. On error nothing of
	// the container may be left behind.
	Create(ctx context.Context, req *CreateRequest) (Container, error)
	// Cleanup force-removes whatever Create made for the container id, after the shim that
	// served it died. It must succeed when nothing is left.
	Cleanup(ctx context.Context, req *CleanupRequest) error
	// Needs says what the backend asks of the shim (see the package doc).
	Needs() Needs
}

// Needs is what a backend asks of the shim.
type Needs struct {
	// HostRootfs: the shim mounts the container's root filesystem on this host (or makes
	// its ZFS dataset) and passes its path as CreateRequest.Rootfs.
	HostRootfs bool
	// HostPids: Process.Pid is a pid on this host.
	HostPids bool
	// OwnsCheckpoints: the backend stores checkpoints and restores from them itself.
	OwnsCheckpoints bool
}

// CreateRequest is everything a backend needs to make a container.
type CreateRequest struct {
	ID        string
	Namespace string
	// Bundle is the OCI bundle directory; with Needs.HostRootfs its rootfs is already
	// mounted by the shim.
	Bundle string
	// Rootfs is the absolute path of the mounted root filesystem (Needs.HostRootfs).
	Rootfs string
	// Mounts are containerd's root filesystem mounts: passed through when the backend
	// does not need the rootfs on this host, and otherwise what Rootfs was made from
	// (none when it was restored from the shim's own checkpoint).
	Mounts []*types.Mount
	// Checkpoint is the checkpoint to restore from (Needs.OwnsCheckpoints), "" for none.
	Checkpoint string
	Spec       *specs.Spec
	// StateDir is a directory private to this container, removed by the shim after Delete.
	StateDir string
	// IO is the init process's stdio, already opened.
	IO *IO
	// Exits reports the exits of the shim's children (local backends); see ExitWatcher.
	Exits *ExitWatcher
	// Config is the effective configuration (file, runtime options, annotations merged).
	Config *Config
}

// CleanupRequest names a container whose shim is gone.
type CleanupRequest struct {
	ID        string
	Namespace string
	Bundle    string
	StateDir  string
	Config    *Config
}

// Container is one container made by a backend.
type Container interface {
	// Init is the container's init process (the OCI process of the spec).
	Init() Process
	// Start runs the init process.
	Start(ctx context.Context) error
	// Exec prepares (but does not start) an additional process in the container.
	Exec(ctx context.Context, req *ExecRequest) (Process, error)
	// KillAll signals every process of the container.
	KillAll(ctx context.Context, sig syscall.Signal) error
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	// Pids lists every process in the container, as Process.Pid numbers them.
	Pids(ctx context.Context) ([]int, error)
	// Stats returns cgroup metrics in the types containerd and the kubelet read
	// (cgroups v1 or v2 stats Metrics).
	Stats(ctx context.Context) (typeurl.Any, error)
	Update(ctx context.Context, res *specs.LinuxResources) error
	Checkpoint(ctx context.Context, req *CheckpointRequest) error
	// OOM delivers one value each time the kernel's OOM killer acts inside the container's
	// memory cgroup. It may be nil when the backend cannot tell.
	OOM() <-chan struct{}
	// Delete removes the container; the init process has exited (or force is set).
	Delete(ctx context.Context, force bool) error
}

// ExecRequest describes an additional process.
type ExecRequest struct {
	ID   string
	Spec *specs.Process
	IO   *IO
}

// CheckpointRequest asks for the container's state to be written to Path.
type CheckpointRequest struct {
	Path string
	Exit bool
	// WorkPath is scratch space for the checkpointer.
	WorkPath string
}

// Process is one process of a container: the init or an exec.
type Process interface {
	ID() string
	// Pid is the id containerd shows for the process, 0 before it started: its host pid
	// when the backend's Needs.HostPids, else a number of the backend's (stable, non-zero).
	Pid() int
	// Start runs an exec'ed process; for the init, use Container.Start.
	Start(ctx context.Context) error
	Kill(ctx context.Context, sig syscall.Signal) error
	ResizePty(ctx context.Context, ws console.WinSize) error
	// CloseStdin closes the process's stdin, so a process reading it sees EOF.
	CloseStdin(ctx context.Context) error
	// Done is closed once the process has exited and its output is drained.
	Done() <-chan struct{}
	// Exit is valid once Done is closed.
	Exit() Exit
	// Delete releases what the process holds (stdio, fifos). The process has exited.
	Delete(ctx context.Context) error
}

// Exit is how a process ended. Status is the exit code, or 128+signal when a signal killed
// the process, as a shell reports it.
type Exit struct {
	Pid      int
	Status   int
	ExitedAt time.Time
}

// Package runtime holds what every lxcri backend shares: the Backend, Container and Process
// interfaces the task service drives, stdio plumbing, exit tracking, cgroup metrics, rootfs
// mounting and configuration.
//
// A backend returns errors wrapped with errdefs sentinels (NotFound, InvalidArgument,
// FailedPrecondition, NotImplemented, ...); the shim converts them to gRPC codes once, at the
// service boundary. A backend never imports the shim package.
package runtime

import (
	"context"
	"syscall"
	"time"

	"github.com/containerd/console"
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
}

// CreateRequest is everything a backend needs to make a container.
type CreateRequest struct {
	ID        string
	Namespace string
	// Bundle is the OCI bundle directory; its rootfs is already mounted by the shim.
	Bundle string
	// Rootfs is the absolute path of the mounted root filesystem.
	Rootfs string
	Spec   *specs.Spec
	// StateDir is a directory private to this container, removed by the shim after Delete.
	StateDir string
	// IO is the init process's stdio, already opened.
	IO *IO
	// Exits reports the exits of the shim's children; see ExitWatcher.
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
	// Pids lists the host pids of every process in the container.
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
	// Pid is the host pid, 0 before the process started.
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

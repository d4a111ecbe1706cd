// Package shim is lxcri's containerd-facing layer: the manager that starts (and, after a
// crash, cleans up for) shim processes, and the task service that serves containerd's task
// API over ttrpc on top of the backends of package runtime.
package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
)

// RuntimeName is the runtime type containerd knows the shim by.
const RuntimeName = "io.containerd.lxcri.v2"

// GroupAnnotations put containers into one shim process; the first present wins.
var GroupAnnotations = []string{"io.containerd.lxcri.v2.group", "io.kubernetes.cri.sandbox-id"}

// Version is set at build time.
var Version = "dev"

type manager struct {
	backends Registry
}

// NewManager returns the shim manager that containerd's pkg/shim drives for the
// `start` and `delete` actions.
func NewManager(backends Registry) shim.Shim {
	return &manager{backends: backends}
}

func (m *manager) Name() string { return RuntimeName }

// namespaceGroup is the group of every container of a namespace without a group annotation
// under shim_group = "namespace" (the socket address holds the namespace too).
const namespaceGroup = "namespace"

// groupOf reads the bundle's spec annotations and the host configuration to find the shim
// group of a container.
func groupOf(bundle, id string) (string, error) {
	cfg, err := runtime.LoadHostConfig()
	if err != nil {
		return "", err
	}
	return annotatedGroupOf(bundle, id, cfg.ShimGroup == runtime.ShimGroupNamespace)
}

// annotatedGroupOf is the group of a container: its group annotation's, else the
// namespace's with byNamespace, else its own.
func annotatedGroupOf(bundle, id string, byNamespace bool) (string, error) {
	own := id
	if byNamespace {
		own = namespaceGroup
	}
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// Create reports the missing config.json with the right code; the shim
			// itself can still start.
			return own, nil
		}
		return "", err
	}
	var s struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return own, nil
	}
	for _, a := range GroupAnnotations {
		if g, ok := s.Annotations[a]; ok && g != "" {
			// The group names the shim's socket and appears in its log.
			if err := validName("annotation "+a, g); err != nil {
				return "", err
			}
			return g, nil
		}
	}
	return own, nil
}

// Start launches a shim server process for the container, or returns the address of the
// live shim that already serves its group.
func (m *manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, retErr error) {
	res := &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc"}
	id := params.GetInstanceID()
	if err := validName("task id", id); err != nil {
		return nil, err
	}
	ns, err := requestNamespace(ctx)
	if err != nil {
		return nil, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	group, err := groupOf(cwd, id)
	if err != nil {
		return nil, err
	}
	socketDir := params.GetSocketDir()
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	addr, err := shim.CreateSocketAddress(ctx, socketDir, params.GetContainerdGrpcAddress(), group, false)
	if err != nil {
		return nil, err
	}
	l, err := shim.NewSocket(addr)
	if err != nil {
		if !shim.SocketEaddrinuse(err) {
			return nil, fmt.Errorf("create shim socket %s: %w", addr, err)
		}
		if shim.CanConnect(addr) {
			// A live shim serves this group already: reuse it.
			res.Address = addr
			return res, nil
		}
		if err := shim.RemoveSocket(addr); err != nil {
			return nil, fmt.Errorf("remove stale shim socket: %w", err)
		}
		if l, err = shim.NewSocket(addr); err != nil {
			return nil, fmt.Errorf("create shim socket %s: %w", addr, err)
		}
	}
	defer func() {
		if retErr != nil {
			l.Close()
			shim.RemoveSocket(addr)
		}
	}()
	f, err := l.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()

	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	files := []*os.File{f}
	args := []string{"-namespace", ns, "-id", id, "-address", params.GetContainerdGrpcAddress()}
	if params.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG {
		args = append(args, "-debug")
		// With -debug, pkg/shim serves the debug endpoint (RegisterDebugPlugin) on fd 4.
		df, daddr, err := debugSocket(ctx, socketDir, params.GetContainerdGrpcAddress(), group)
		if err != nil {
			return nil, err
		}
		defer func() {
			df.Close()
			if retErr != nil {
				shim.RemoveSocket(daddr)
			}
		}()
		files = append(files, df)
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd
	// A shim serves few requests: a small GOMAXPROCS keeps its threads and memory down.
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cgroupPath, err := shimCgroup(params)
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start shim server: %w", err)
	}
	go cmd.Wait()
	if cgroupPath != "" {
		if err := joinCgroup(cgroupPath, cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			return nil, err
		}
	}
	if err := shim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		log.G(ctx).WithError(err).Debug("adjust shim oom score")
	}
	res.Address = addr
	return res, nil
}

// debugSocket makes the debug socket of a new shim server of group, replacing one a dead
// shim left behind (containerd's runc shim does the same), and returns its file and address.
func debugSocket(ctx context.Context, socketDir, grpcAddress, group string) (*os.File, string, error) {
	addr, err := shim.CreateSocketAddress(ctx, socketDir, grpcAddress, group, true)
	if err != nil {
		return nil, "", err
	}
	l, err := shim.NewSocket(addr)
	if err != nil && shim.SocketEaddrinuse(err) {
		if err := shim.RemoveSocket(addr); err != nil {
			return nil, "", fmt.Errorf("remove stale shim debug socket: %w", err)
		}
		l, err = shim.NewSocket(addr)
	}
	if err != nil {
		return nil, "", fmt.Errorf("create shim debug socket %s: %w", addr, err)
	}
	f, err := l.File()
	// The socket outlives this process: the shim server serves it from f.
	l.SetUnlinkOnClose(false)
	l.Close()
	if err != nil {
		shim.RemoveSocket(addr)
		return nil, "", err
	}
	return f, addr, nil
}

// Stop runs after a shim died (containerd's `delete` action): it asks the container's
// backend to force-remove it, unmounts the rootfs and reports the last known exit.
func (m *manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	if err := validName("task id", id); err != nil {
		return shim.StopStatus{}, err
	}
	ns, err := requestNamespace(ctx)
	if err != nil {
		return shim.StopStatus{}, err
	}
	bundle, err := os.Getwd()
	if err != nil {
		return shim.StopStatus{}, err
	}
	rec, err := readRecord(bundle)
	if err == nil && rec.Config == nil {
		err = fmt.Errorf("record %s has no configuration: %w", recordFile, errdefs.ErrInvalidArgument)
	}
	if err == nil {
		// The state folder is recomputed from the checked names, not taken from the
		// record: what is removed is this container's folder and nothing else.
		if stateDir, err := containerStateDir(rec.Config.StateDir, ns, id); err != nil {
			log.G(ctx).WithError(err).Warn("backend cleanup skipped")
		} else {
			if rec.StateDir != stateDir {
				log.G(ctx).Warnf("record names state folder %q, not %q: cleaning up the latter", rec.StateDir, stateDir)
			}
			m.cleanup(ctx, rec, &runtime.CleanupRequest{ID: id, Namespace: ns, Bundle: bundle, StateDir: stateDir, Config: rec.Config})
			os.RemoveAll(stateDir)
		}
	}
	if err := runtime.UnmountRootfs(bundle); err != nil {
		log.G(ctx).WithError(err).Warn("unmount rootfs")
	}
	if rec != nil && rec.Config != nil && rec.Config.ZFS.Dataset != "" {
		// the record stays for the next `delete` when the dataset cannot go now
		if err := zfsroot.ReleaseID(ctx, &rec.Config.ZFS, ns, id); err != nil {
			return shim.StopStatus{}, fmt.Errorf("release the dataset of %s/%s (delete again to retry): %w", ns, id, err)
		}
	}
	st := shim.StopStatus{ExitedAt: time.Now(), ExitStatus: 128 + int(syscall.SIGKILL)}
	if e, err := readExit(bundle); err == nil {
		st = shim.StopStatus{Pid: e.Pid, ExitStatus: e.Status, ExitedAt: e.ExitedAt}
	}
	removeRecord(bundle)
	return st, nil
}

// cleanup asks the recorded backend to force-remove what it made for the container.
func (m *manager) cleanup(ctx context.Context, rec *record, req *runtime.CleanupRequest) {
	b, err := m.backends.New(ctx, rec.Backend, rec.Config)
	if err == nil {
		err = b.Cleanup(ctx, req)
	}
	if err != nil {
		log.G(ctx).WithError(err).Warn("backend cleanup")
	}
}

// featureReporter is what a backend may offer to describe itself to containerd in
// runtime-spec's features form (mount options, idmap, seccomp, namespaces...).
type featureReporter interface {
	Features(ctx context.Context) (*features.Features, error)
}

// Info describes the shim to containerd (`containerd-shim-lxcri-v2 -info`, containerd's
// RuntimeInfo): optionsR holds the runtime options of the runtime handler, which choose
// the backend as they do at Create, and that backend's features are reported, so that
// containerd and the kubelet ask for recursive read-only or idmapped mounts only where
// they work.
func (m *manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	info := &types.RuntimeInfo{
		Name:    RuntimeName,
		Version: &types.RuntimeVersion{Version: Version},
	}
	var opts typeurl.Any
	if optionsR != nil {
		data, err := io.ReadAll(optionsR)
		if err != nil {
			return nil, fmt.Errorf("read runtime options: %w", err)
		}
		if len(data) > 0 {
			var a anypb.Any
			if err := proto.Unmarshal(data, &a); err != nil {
				return nil, fmt.Errorf("runtime options: %v: %w", err, errdefs.ErrInvalidArgument)
			}
			opts, info.Options = &a, &a
		}
	}
	cfg, err := effectiveConfig("", opts, nil)
	if err != nil {
		return nil, err
	}
	b, err := m.backends.New(ctx, cfg.Backend, cfg)
	if err != nil {
		return nil, err
	}
	info.Annotations = map[string]string{runtime.BackendAnnotation: cfg.Backend}
	fr, ok := b.(featureReporter)
	if !ok {
		return info, nil
	}
	f, err := fr.Features(ctx)
	if err != nil {
		// As containerd's runc shim with a CLI that has no `features`: no features.
		log.G(ctx).WithError(err).Debugf("backend %s reports no features", cfg.Backend)
		return info, nil
	}
	if info.Features, err = typeurl.MarshalAnyToProto(f); err != nil {
		return nil, fmt.Errorf("marshal features: %w", err)
	}
	return info, nil
}

// readSpec loads the bundle's OCI spec; a missing or malformed one is the client's error.
func readSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bundle %s has no config.json: %w", bundle, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("read bundle config: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("bundle %s: malformed config.json: %v: %w", bundle, err, errdefs.ErrInvalidArgument)
	}
	return &s, nil
}

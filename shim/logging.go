package shim

import (
	"context"

	"github.com/containerd/log"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
)

// Log fields every line about a container carries, so that an operator can follow one
// container (or one backend, or one dataset) through containerd's log, where the shim's
// output ends up.
const (
	fieldNamespace = "namespace"
	fieldID        = "id"
	fieldBackend   = "backend"
	fieldDataset   = "dataset"
)

// taskLogFields are the log fields of container id of namespace ns configured by cfg.
func taskLogFields(ns, id string, cfg *runtime.Config) log.Fields {
	f := log.Fields{fieldNamespace: ns, fieldID: id}
	if cfg == nil {
		return f
	}
	f[fieldBackend] = cfg.Backend
	if cfg.ZFS.Dataset != "" {
		if ds, err := zfsroot.ContainerDataset(&cfg.ZFS, ns, id); err == nil {
			f[fieldDataset] = ds
		}
	}
	return f
}

// withTaskLog returns ctx whose logger (log.G) carries the container's fields. With
// debug = true in the container's configuration it raises the shim's log level to debug
// (containerd's --debug does that through the shim's -debug flag); the level is the shim
// process's, so it is raised, never lowered, for the containers that share the shim.
func withTaskLog(ctx context.Context, ns, id string, cfg *runtime.Config) context.Context {
	if cfg != nil && cfg.Debug && log.GetLevel() < log.DebugLevel {
		_ = log.SetLevel(log.DebugLevel)
		log.G(ctx).WithField(fieldID, id).Debug("debug logging on: debug = true in the container's configuration")
	}
	return log.WithLogger(ctx, log.G(ctx).WithFields(taskLogFields(ns, id, cfg)))
}

package shim

import (
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// RegisterTaskPlugin registers the task service with pkg/shim's plugin registry; pkg/shim
// serves every registered TTRPC plugin.
func RegisterTaskPlugin(backends Registry) {
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.EventPlugin, plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			pp, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			ss, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			sd := ss.(shutdown.Service)
			if f := removeGroupSockets(ic.Context, ic.Properties[plugins.PropertyGRPCAddress]); f != nil {
				sd.RegisterCallback(f)
			}
			return NewTaskService(ic.Context, backends, pp.(shim.Publisher), sd)
		},
	})
}

package shim

import (
	"expvar"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// RegisterDebugPlugin registers the shim's debug endpoint: Go's pprof profiles and expvar
// over HTTP, as containerd's runc shim serves them. containerd's pkg/shim serves it only
// when the shim runs with -debug (containerd's log level is debug), on the debug socket
// the manager opens beside the task socket (shim.CreateSocketAddress with debug set).
// Tools read a long-lived shim's goroutines from it, e.g.
//
//	curl --unix-socket <socket dir>/<hash> 'http://shim/debug/pprof/goroutine?debug=1'
//
// and its memory from /debug/vars; the socket is root's, in containerd's socket folder.
func RegisterDebugPlugin() {
	registry.Register(&plugin.Registration{
		Type: plugins.HTTPHandler,
		// pkg/shim looks the handler up by this id.
		ID: "pprof",
		InitFn: func(*plugin.InitContext) (any, error) {
			return newDebugServer(), nil
		},
	})
}

func newDebugServer() *http.Server {
	m := http.NewServeMux()
	m.Handle("/debug/vars", expvar.Handler())
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{Handler: m, ReadHeaderTimeout: time.Minute}
}

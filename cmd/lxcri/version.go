//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	goruntime "runtime"
	"runtime/debug"

	golxc "github.com/lxc/go-lxc"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise the module's
// version or the VCS revision is shown.
var version = ""

// Version is what `lxcri version` shows.
type Version struct {
	Version    string `json:"version"`
	Revision   string `json:"revision,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	Go         string `json:"go"`
	Liblxc     string `json:"liblxc"`
	Containerd string `json:"containerd_libs,omitempty"`
}

func buildVersion() Version {
	v := Version{Version: version, Go: goruntime.Version(), Liblxc: golxc.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/containerd/containerd/v2" {
				v.Containerd = d.Version
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := newFlags("version", "", stderr)
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	v := buildVersion()
	if *asJSON {
		return writeJSON(stdout, v)
	}
	rev := v.Revision
	if rev != "" && v.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(stdout, "lxcri %s\n", v.Version)
	if rev != "" {
		fmt.Fprintf(stdout, "revision:         %s\n", rev)
	}
	fmt.Fprintf(stdout, "liblxc:           %s\n", v.Liblxc)
	fmt.Fprintf(stdout, "containerd libs:  %s\n", v.Containerd)
	fmt.Fprintf(stdout, "go:               %s\n", v.Go)
	return nil
}

//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/ttrpc"

	"github.com/lxcri/lxcri/runtime/zfsroot"
	lxcrishim "github.com/lxcri/lxcri/shim"
)

// defaultStateRoot is containerd's state folder; the task bundles of runtime v2 shims are in
// <root>/io.containerd.runtime.v2.task/<namespace>/<id>.
const (
	defaultStateRoot = "/run/containerd"
	taskDir          = "io.containerd.runtime.v2.task"
)

// Container is one container an lxcri shim manages, as `lxcri list` and `lxcri state` show it.
type Container struct {
	Namespace string `json:"namespace"`
	ID        string `json:"id"`
	Backend   string `json:"backend"`
	// Status is the shim's answer (created, running, paused, stopped), or "unknown" when
	// its shim does not answer (Error says why).
	Status     string     `json:"status"`
	Pid        uint32     `json:"pid,omitempty"`
	ExitStatus *uint32    `json:"exit_status,omitempty"`
	ExitedAt   *time.Time `json:"exited_at,omitempty"`
	// Dataset is the container's ZFS dataset, when its root filesystem is on ZFS.
	Dataset  string `json:"dataset,omitempty"`
	Bundle   string `json:"bundle"`
	StateDir string `json:"state_dir,omitempty"`
	// Shim is the address of the container's shim.
	Shim  string `json:"shim,omitempty"`
	Error string `json:"error,omitempty"`
}

// findContainers reads every lxcri bundle under root (of namespace ns, or all) and asks each
// container's shim for its state.
func findContainers(ctx context.Context, root, ns string) ([]Container, error) {
	base := filepath.Join(root, taskDir)
	if _, err := os.Stat(base); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // no shim has run since boot
		}
		return nil, err
	}
	pattern := filepath.Join(base, "*", "*", lxcrishim.RecordFile)
	if ns != "" {
		pattern = filepath.Join(base, ns, "*", lxcrishim.RecordFile)
	}
	recs, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out []Container
	for _, r := range recs {
		bundle := filepath.Dir(r)
		c := Container{Namespace: filepath.Base(filepath.Dir(bundle)), ID: filepath.Base(bundle), Bundle: bundle, Status: "unknown"}
		br, err := lxcrishim.ReadBundle(bundle)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted meanwhile
			}
			c.Error = err.Error()
			out = append(out, c)
			continue
		}
		c.Backend, c.StateDir = br.Backend, br.StateDir
		if br.Config != nil && br.Config.ZFS.Dataset != "" {
			if ds, err := zfsroot.ContainerDataset(&br.Config.ZFS, c.Namespace, c.ID); err == nil {
				c.Dataset = ds
			}
		}
		shimState(ctx, &c)
		if c.Status == "unknown" && br.Exit != nil {
			c.Status = "stopped"
			es := uint32(br.Exit.Status)
			c.ExitStatus, c.ExitedAt = &es, &br.Exit.ExitedAt
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// shimState asks the container's shim (its address is in the bundle's bootstrap.json, which
// containerd writes) for the container's state.
func shimState(ctx context.Context, c *Container) {
	var bp shim.BootstrapParams
	b, err := os.ReadFile(filepath.Join(c.Bundle, "bootstrap.json"))
	if err == nil {
		err = json.Unmarshal(b, &bp)
	}
	if err != nil || bp.Address == "" {
		c.Error = "no shim address in the bundle"
		return
	}
	c.Shim = bp.Address
	conn, err := shim.Connect(bp.Address, shim.AnonDialer)
	if err != nil {
		c.Error = "shim does not answer: " + err.Error()
		return
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := taskAPI.NewTTRPCTaskClient(client).State(ctx, &taskAPI.StateRequest{ID: c.ID})
	if err != nil {
		c.Error = "shim: " + err.Error()
		return
	}
	c.Status = strings.ToLower(st.Status.String())
	c.Pid = st.Pid
	if c.Status == "stopped" {
		es := st.ExitStatus
		c.ExitStatus = &es
		if st.ExitedAt != nil {
			t := st.ExitedAt.AsTime()
			c.ExitedAt = &t
		}
	}
}

func cmdList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := newFlags("list", "", stderr)
	root := fs.String("root", defaultStateRoot, "containerd's state folder")
	ns := fs.String("n", "", "only this namespace")
	backend := fs.String("backend", "", "only this backend")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	cs, err := findContainers(ctx, *root, *ns)
	if err != nil {
		return err
	}
	if *backend != "" {
		var sel []Container
		for _, c := range cs {
			if c.Backend == *backend {
				sel = append(sel, c)
			}
		}
		cs = sel
	}
	if *asJSON {
		if cs == nil {
			cs = []Container{}
		}
		return writeJSON(stdout, cs)
	}
	if len(cs) == 0 {
		fmt.Fprintln(stdout, "no lxcri containers under "+filepath.Join(*root, taskDir))
		return nil
	}
	// per backend, as operators look for one backend's containers
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Backend < cs[j].Backend })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tNAMESPACE\tID\tSTATUS\tPID\tDATASET")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(c.Backend), c.Namespace, c.ID, statusText(c), pidText(c.Pid), dash(c.Dataset))
	}
	return tw.Flush()
}

func cmdState(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := newFlags("state", " ID", stderr)
	root := fs.String("root", defaultStateRoot, "containerd's state folder")
	ns := fs.String("n", "", "the container's namespace (needed when the id is in several)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitError(2)
	}
	id := pos[0]
	cs, err := findContainers(ctx, *root, *ns)
	if err != nil {
		return err
	}
	var match []Container
	for _, c := range cs {
		if c.ID == id {
			match = append(match, c)
		}
	}
	switch len(match) {
	case 0:
		return fmt.Errorf("no lxcri container %q under %s", id, filepath.Join(*root, taskDir, orAll(*ns)))
	case 1:
	default:
		var nss []string
		for _, c := range match {
			nss = append(nss, c.Namespace)
		}
		return fmt.Errorf("container %q is in namespaces %s: say which with -n", id, strings.Join(nss, ", "))
	}
	c := match[0]
	if *asJSON {
		return writeJSON(stdout, c)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("namespace", c.Namespace)
	row("id", c.ID)
	row("backend", c.Backend)
	row("status", statusText(c))
	row("pid", pidText(c.Pid))
	row("dataset", c.Dataset)
	row("bundle", c.Bundle)
	row("state dir", c.StateDir)
	row("shim", c.Shim)
	row("error", c.Error)
	return tw.Flush()
}

func statusText(c Container) string {
	if c.Status == "stopped" && c.ExitStatus != nil {
		return fmt.Sprintf("stopped (exit %d)", *c.ExitStatus)
	}
	return c.Status
}

func pidText(p uint32) string {
	if p == 0 {
		return "-"
	}
	return fmt.Sprint(p)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orAll(ns string) string {
	if ns == "" {
		return "*"
	}
	return ns
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
